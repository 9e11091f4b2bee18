"""Python function targets: the registry of an application's functions, and how a target's
JSON arguments are bound to one.

A function is registered under a task name (``TaskRegistry.register``, or the ``task``
decorator); a job names it in a ``PythonTarget``. Its arguments are checked against the
function's signature as ``pydantic.validate_call`` would check them (lax mode: ``"5"`` for an
``int`` is 5), once when the job is put and again at each call, and the function is called
with the validated values. A parameter annotated ``RunContext`` is not an argument: Kairos
passes who is calling (the job, the run, the fire's time, the attempt) there.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ConfigDict, PydanticSchemaGenerationError, TypeAdapter, ValidationError

from kairos.errors import InvalidField, InvalidTask
from kairos.targets import PythonTarget, check_task_name

__all__ = ["BoundCall", "RunContext", "Task", "TaskRegistry"]

_F = TypeVar("_F", bound=Callable[..., Any])
_P = inspect.Parameter
_POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
_BY_NAME = (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)
_Loc = tuple[str | int, ...]
# Names that a job lists when its task is unknown here: enough to spot a typo.
_NAMES_SHOWN = 20


@dataclass(frozen=True, slots=True)
class RunContext:
    """Who is calling a task: given to its parameter annotated ``RunContext``. ``job_id`` and
    ``scheduled_for`` are the same for every attempt at one fire, so together they make an
    idempotency key; ``attempt`` is 1 for the first."""

    job_id: str
    run_id: int
    scheduled_for: datetime
    """The fire's nominal time, in UTC."""
    attempt: int


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    kind: inspect._ParameterKind
    adapter: TypeAdapter[Any]
    required: bool

    def validate(self, value: Any, loc: _Loc) -> Any:
        try:
            return self.adapter.validate_python(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise InvalidField(["target", *loc, *first["loc"]], first["msg"]) from None


@dataclass(frozen=True, slots=True)
class BoundCall:
    """A task with its validated arguments, ready to be called."""

    task: Task
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __call__(self) -> Any:
        return self.task.function(*self.args, **self.kwargs)


class Task:
    """A registered function: its name, whether it is a coroutine function, and what it takes."""

    def __init__(self, name: str, function: Callable[..., Any]) -> None:
        self.name = name
        self.function = function
        self.is_async = _is_async(function)
        try:
            signature = inspect.signature(function, eval_str=True)
        except (TypeError, ValueError, NameError, AttributeError, SyntaxError) as exc:
            raise InvalidTask(name, f"its signature cannot be read: {exc}") from None
        self._kinds = {p.name: p.kind for p in signature.parameters.values()}
        """Every parameter, the context's too, in the function's order."""
        self.context = _context_parameter(name, signature)
        """The parameter that takes the ``RunContext``, if one does."""
        self._parameters = [
            _parameter(name, p) for p in signature.parameters.values() if p.name != self.context
        ]
        self._positional = [p for p in self._parameters if p.kind in _POSITIONAL]
        self._by_name = {p.name: p for p in self._parameters if p.kind in _BY_NAME}
        self._var_args = next((p for p in self._parameters if p.kind is _P.VAR_POSITIONAL), None)
        self._var_kwargs = next((p for p in self._parameters if p.kind is _P.VAR_KEYWORD), None)

    def bind(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], context: RunContext | None
    ) -> BoundCall:
        """The call of this task with ``args`` and ``kwargs`` validated against its signature;
        ``InvalidField`` naming the first argument that does not fit (``target.args.0``,
        ``target.kwargs.depth``, ``target.kwargs.depth.0`` inside one)."""
        values: dict[str, Any] = {}
        extra_args: list[Any] = []
        extra_kwargs: dict[str, Any] = {}
        for index, value in enumerate(args):
            if index < len(self._positional):
                parameter = self._positional[index]
                values[parameter.name] = parameter.validate(value, ("args", index))
            elif self._var_args is not None:
                extra_args.append(self._var_args.validate(value, ("args", index)))
            else:
                most = len(self._positional)
                raise InvalidField(
                    ["target", "args", index],
                    f"{self.name} takes at most {most} positional argument{'s' * (most != 1)}",
                )
        for key, value in kwargs.items():
            parameter = self._keyword(key, values)
            if parameter is self._var_kwargs:
                extra_kwargs[key] = parameter.validate(value, ("kwargs", key))
            else:
                values[key] = parameter.validate(value, ("kwargs", key))
        for parameter in self._parameters:
            if parameter.required and parameter.name not in values:
                raise InvalidField(
                    ["target", "kwargs", parameter.name], f"missing: {self.name} requires it"
                )
        if self.context is not None:
            values[self.context] = context
        return self._call(values, extra_args, extra_kwargs)

    def _keyword(self, key: str, values: Mapping[str, Any]) -> _Parameter:
        """The parameter that ``kwargs[key]`` goes to; ``InvalidField`` if none may take it."""
        loc = ["target", "kwargs", key]
        if key == self.context:
            raise InvalidField(loc, f"takes the RunContext, which Kairos passes to {self.name}")
        if key in values:
            raise InvalidField(loc, "given twice: also in args")
        parameter = self._by_name.get(key)
        if parameter is not None:
            return parameter
        if any(p.name == key for p in self._positional):
            raise InvalidField(loc, f"{self.name} takes it only by position: put it in args")
        if self._var_kwargs is None:
            takes = ", ".join(sorted(self._by_name)) or "none"
            raise InvalidField(loc, f"{self.name} has no such parameter (it takes: {takes})")
        return self._var_kwargs

    def _call(
        self, values: dict[str, Any], extra_args: list[Any], extra_kwargs: dict[str, Any]
    ) -> BoundCall:
        """Arguments in the function's own order: by position until the first one left to
        its default, by name after it."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        by_position = True
        for name, kind in self._kinds.items():
            if name in values:
                if by_position and kind in _POSITIONAL:
                    args.append(values[name])
                else:
                    kwargs[name] = values[name]
            elif self._var_args is not None and name == self._var_args.name:
                args.extend(extra_args)
            elif self._var_kwargs is not None and name == self._var_kwargs.name:
                kwargs.update(extra_kwargs)
            else:
                by_position = False
        return BoundCall(self, tuple(args), kwargs)


class TaskRegistry:
    """The functions that python targets may name on this node, by task name."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def register(self, name: str, function: Callable[..., Any]) -> None:
        """Make ``function`` the task ``name``. Registering the same function again is a
        no-op; ``InvalidTask`` if the name is not a task name (see ``TASK_NAME_PATTERN``), is
        taken by another function, or the function's signature cannot be checked."""
        try:
            check_task_name(name)
        except ValueError as exc:
            raise InvalidTask(name, str(exc)) from None
        current = self._tasks.get(name)
        if current is not None:
            if current.function is function:
                return
            raise InvalidTask(
                name, f"already registered for {_described(current.function)}: choose another name"
            )
        self._tasks[name] = Task(name, function)

    def task(self, name: str | None = None) -> Callable[[_F], _F]:
        """A decorator registering the function as the task ``name``; without a name, as its
        ``__name__`` (``crawl`` for ``def crawl``, wherever it is defined). The function is
        returned unchanged."""
        if callable(name):
            raise InvalidTask(_described(name), "use the decorator called: @tasks.task()")

        def register(function: _F) -> _F:
            self.register(name if name is not None else _default_name(function), function)
            return function

        return register

    def names(self) -> frozenset[str]:
        return frozenset(self._tasks)

    def include(self, other: TaskRegistry) -> None:
        """Register every task of ``other`` here too (``InvalidTask`` on a name clash)."""
        for task in other._tasks.values():
            self.register(task.name, task.function)

    @classmethod
    def from_modules(cls, modules: Iterable[str]) -> TaskRegistry:
        """The tasks that the modules named register: each is imported, and every registry
        it holds at its top level (a ``TaskRegistry``, or an object whose ``tasks`` is one,
        such as a ``Kairos``) is taken. ``InvalidTask`` names a module that cannot be
        imported or holds no registry, and a task name two modules give different
        functions."""
        registry = cls()
        for name in modules:
            try:
                module = importlib.import_module(name)
            except Exception as exc:
                raise InvalidTask(name, f"cannot import the module: {exc!r}") from None
            found = [r for r in map(_registry_of, vars(module).values()) if r is not None]
            if not found:
                raise InvalidTask(
                    name,
                    "the module holds no task registry at its top level (a Kairos object or a"
                    " kairos.tasks.TaskRegistry whose functions are its tasks)",
                )
            for other in found:
                registry.include(other)
        return registry

    def get(self, name: str) -> Task | None:
        return self._tasks.get(name)

    def bind(self, target: PythonTarget, context: RunContext | None = None) -> BoundCall:
        """The call ``target`` makes, its arguments validated; ``InvalidField`` naming
        ``target.task`` if no function is registered under it, or the argument that does not
        fit (see ``Task.bind``). Without a ``context``, the task's ``RunContext`` is None."""
        task = self._tasks.get(target.task)
        if task is None:
            raise InvalidField(["target", "task"], self._unknown(target.task))
        return task.bind(target.args, target.kwargs, context)

    def check(self, target: PythonTarget) -> None:
        """``InvalidField`` as ``bind`` says, or nothing when ``target`` may be called here."""
        self.bind(target)

    def _unknown(self, name: str) -> str:
        known = sorted(self._tasks)
        shown = ", ".join(known[:_NAMES_SHOWN]) + (", ..." if len(known) > _NAMES_SHOWN else "")
        return f"no task {name!r} is registered (registered: {shown or 'none'})"


def _registry_of(value: object) -> TaskRegistry | None:
    if isinstance(value, TaskRegistry):
        return value
    tasks = getattr(value, "tasks", None) if not isinstance(value, type) else None
    return tasks if isinstance(tasks, TaskRegistry) else None


def _parameter(task: str, parameter: inspect.Parameter) -> _Parameter:
    annotation = Any if parameter.annotation is _P.empty else parameter.annotation
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    except PydanticSchemaGenerationError:
        # A type pydantic cannot build from JSON: only its default (or an instance of it,
        # which JSON cannot give) will do.
        adapter = TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
    except Exception as exc:
        message = f"the type of parameter {parameter.name!r} cannot be checked: {exc}"
        raise InvalidTask(task, message) from None
    required = parameter.default is _P.empty and parameter.kind not in (
        _P.VAR_POSITIONAL,
        _P.VAR_KEYWORD,
    )
    return _Parameter(parameter.name, parameter.kind, adapter, required)


def _context_parameter(task: str, signature: inspect.Signature) -> str | None:
    """The one parameter annotated ``RunContext``, which must be nameable."""
    found = [p for p in signature.parameters.values() if p.annotation is RunContext]
    if not found:
        return None
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InvalidTask(task, f"only one parameter may take the RunContext, not {names}")
    if found[0].kind not in _BY_NAME:
        message = f"the RunContext parameter {found[0].name!r} must be one a name can pass"
        raise InvalidTask(task, message)
    return found[0].name


def _is_async(function: Callable[..., Any]) -> bool:
    call = getattr(type(function), "__call__", None)  # noqa: B004 - an instance's own method
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


def _default_name(function: Callable[..., Any]) -> str:
    name = getattr(function, "__name__", None)
    if not isinstance(name, str):
        raise InvalidTask(_described(function), "it has no __name__: give the task a name")
    return name


def _described(function: object) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or repr(function)
    return f"{module}.{name}" if module else str(name)
