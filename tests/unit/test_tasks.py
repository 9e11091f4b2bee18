"""Python function targets as data: task registration, argument binding against a function's
signature (errors named where the client wrote the argument), ``RunContext`` injection, and
arguments that are JSON only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from kairos.errors import InvalidField, InvalidTask
from kairos.models import JobSpec, PythonTarget
from kairos.tasks import RunContext, TaskRegistry

TRIGGER = {"type": "interval", "seconds": 60}
CONTEXT = RunContext("nightly", 7, datetime(2026, 12, 6, 2, 30, tzinfo=UTC), 2)


class Page(BaseModel):
    url: str
    depth: int = 1


def crawl(site: str, ctx: RunContext, depth: int = 1, *, follow: bool = False) -> str:
    return f"{site} {depth} {follow} {ctx.attempt}"


def gather(first: int, /, *rest: int, **labels: str) -> Any:
    return first, rest, labels


def fetch(page: Page, when: datetime | None = None) -> Any:
    return page, when


def registry() -> TaskRegistry:
    tasks = TaskRegistry()
    tasks.register("crawl", crawl)
    tasks.register("gather", gather)
    tasks.register("fetch", fetch)
    return tasks


def target(task: str, *args: Any, **kwargs: Any) -> PythonTarget:
    return PythonTarget(type="python", task=task, args=list(args), kwargs=kwargs)


def bound_error(target: PythonTarget) -> tuple[tuple[str | int, ...], str]:
    with pytest.raises(InvalidField) as caught:
        registry().check(target)
    return caught.value.loc, caught.value.message


# Registration ---------------------------------------------------------------------------------


def test_the_decorator_registers_under_the_function_name_and_returns_it_unchanged() -> None:
    tasks = TaskRegistry()

    @tasks.task()
    def rebuild_index() -> None: ...

    @tasks.task("reports.daily")
    async def report() -> None: ...

    assert tasks.names() == frozenset({"rebuild_index", "reports.daily"})
    found, other = tasks.get("rebuild_index"), tasks.get("reports.daily")
    assert found is not None
    assert other is not None
    assert found.function is rebuild_index
    assert (found.is_async, other.is_async) == (False, True)
    assert tasks.get("report") is None


def test_a_name_taken_by_another_function_is_refused_and_the_same_function_is_not() -> None:
    tasks = registry()
    tasks.register("crawl", crawl)  # again, the same: nothing changes

    def other_crawl() -> None: ...

    with pytest.raises(InvalidTask) as caught:
        tasks.register("crawl", other_crawl)
    assert "task 'crawl': already registered for tests.unit.test_tasks.crawl" in str(caught.value)
    kept = tasks.get("crawl")
    assert kept is not None
    assert kept.function is crawl


@pytest.mark.parametrize("name", ["", "two words", "1st", "a" * 129, "<lambda>", "naïve"])
def test_an_invalid_task_name_is_refused_naming_it(name: str) -> None:
    with pytest.raises(InvalidTask) as caught:
        TaskRegistry().register(name, crawl)
    assert f"task {name!r}: " in str(caught.value)
    assert "is not a task name" in str(caught.value)


def test_a_lambda_needs_a_name_and_the_decorator_must_be_called() -> None:
    tasks = TaskRegistry()
    with pytest.raises(InvalidTask, match="'<lambda>' is not a task name"):
        tasks.task()(lambda: None)
    with pytest.raises(InvalidTask, match=r"use the decorator called: @tasks.task\(\)"):
        tasks.task(crawl)  # type: ignore[arg-type]
    tasks.register("noop", lambda: None)
    assert tasks.names() == frozenset({"noop"})


def test_a_function_with_two_run_contexts_or_a_positional_only_one_is_refused() -> None:
    def twice(a: RunContext, b: RunContext) -> None: ...

    def by_position(ctx: RunContext, /) -> None: ...

    with pytest.raises(InvalidTask, match="only one parameter may take the RunContext"):
        TaskRegistry().register("twice", twice)
    with pytest.raises(InvalidTask, match="'ctx' must be one a name can pass"):
        TaskRegistry().register("by_position", by_position)


def test_a_signature_whose_hints_cannot_be_resolved_is_refused() -> None:
    def broken(x: NoSuchType) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(InvalidTask, match="task 'broken': its signature cannot be read"):
        TaskRegistry().register("broken", broken)


# Binding --------------------------------------------------------------------------------------


def test_arguments_are_validated_as_pydantic_validates_a_call_and_passed_converted() -> None:
    call = registry().bind(target("crawl", "example.com", "3", follow="true"), CONTEXT)
    assert call() == "example.com 3 True 2"
    page = registry().bind(
        target("fetch", {"url": "u", "depth": "2"}, when="2026-12-06T02:30:00Z"), None
    )
    assert page() == (Page(url="u", depth=2), datetime(2026, 12, 6, 2, 30, tzinfo=UTC))


def test_extra_positional_and_keyword_arguments_go_to_star_args_and_star_star_kwargs() -> None:
    call = registry().bind(target("gather", 1, "2", 3, team="ops"))
    assert call() == (1, (2, 3), {"team": "ops"})


@pytest.mark.parametrize(
    ("bad", "loc", "message"),
    [
        (
            target("crawl", "example.com", depth="deep"),
            ("target", "kwargs", "depth"),
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            target("crawl", ["not", "a", "string"]),
            ("target", "args", 0),
            "Input should be a valid string",
        ),
        (
            target("fetch", {"url": "u", "depth": "x"}),
            ("target", "args", 0, "depth"),
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            target("gather", 1, 2, "three"),
            ("target", "args", 2),
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            target("crawl", "a", 1, 2),
            ("target", "args", 2),
            "crawl takes at most 2 positional arguments",
        ),
        (
            target("crawl", "a", dept=2),
            ("target", "kwargs", "dept"),
            "crawl has no such parameter (it takes: depth, follow, site)",
        ),
        (target("crawl", depth=2), ("target", "kwargs", "site"), "missing: crawl requires it"),
        (
            target("crawl", "a", site="b"),
            ("target", "kwargs", "site"),
            "given twice: also in args",
        ),
        (
            target("crawl", "a", ctx={}),
            ("target", "kwargs", "ctx"),
            "takes the RunContext, which Kairos passes to crawl",
        ),
        (
            target("gather", first=1),
            ("target", "kwargs", "first"),
            "gather takes it only by position: put it in args",
        ),
        (
            target("gather", 1, team=5),
            ("target", "kwargs", "team"),
            "Input should be a valid string",
        ),
        (
            target("crawl_site", "a"),
            ("target", "task"),
            "no task 'crawl_site' is registered (registered: crawl, fetch, gather)",
        ),
    ],
)
def test_an_argument_that_does_not_fit_is_named_where_the_client_wrote_it(
    bad: PythonTarget, loc: tuple[str | int, ...], message: str
) -> None:
    assert bound_error(bad) == (loc, message)


# RunContext -----------------------------------------------------------------------------------


def test_the_run_context_is_passed_by_position_or_by_name_as_the_signature_needs() -> None:
    seen: list[Any] = []
    tasks = TaskRegistry()

    @tasks.task()
    def first(ctx: RunContext, n: int) -> None:
        seen.append((ctx, n))

    @tasks.task()
    def keyword_only(n: int = 0, *, context: RunContext) -> None:
        seen.append((n, context))

    tasks.bind(target("first", 5), CONTEXT)()
    tasks.bind(target("first", n=6), CONTEXT)()
    tasks.bind(target("keyword_only"), CONTEXT)()
    assert seen == [(CONTEXT, 5), (CONTEXT, 6), (0, CONTEXT)]
    assert CONTEXT.scheduled_for.tzinfo is UTC


def test_the_run_context_is_no_argument_a_client_can_give() -> None:
    tasks = TaskRegistry()

    @tasks.task()
    def only_context(ctx: RunContext) -> None: ...

    tasks.check(target("only_context"))
    with pytest.raises(InvalidField) as caught:
        tasks.check(target("only_context", {"job_id": "x"}))
    assert caught.value.loc == ("target", "args", 0)


# JSON only ------------------------------------------------------------------------------------


def errors(target: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        JobSpec.model_validate({"trigger": TRIGGER, "target": target})
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


def test_a_python_target_round_trips_through_its_stored_json() -> None:
    spec = JobSpec.model_validate(
        {
            "trigger": TRIGGER,
            "target": {"type": "python", "task": "crawl", "args": ["a"], "kwargs": {"d": 2}},
        }
    )
    assert isinstance(spec.target, PythonTarget)
    assert JobSpec.from_stored(spec.model_dump_json()) == spec
    assert spec.masked() is spec
    assert not spec.sends_masks


@pytest.mark.parametrize(
    ("arguments", "loc", "message"),
    [
        ({"args": [datetime(2026, 1, 1)]}, ("args", 0), "a datetime is not a JSON value"),
        ({"args": [(1, 2)]}, ("args", 0), "a tuple is not a JSON value"),
        ({"kwargs": {"s": {1, 2}}}, ("kwargs", "s"), "a set is not a JSON value"),
        ({"kwargs": {"n": [1, float("nan")]}}, ("kwargs", "n", 1), "NaN and infinity"),
        ({"kwargs": {"m": {1: "x"}}}, ("kwargs", "m"), "object keys must be strings"),
        ({"kwargs": {"note": ["ok", "\ud800"]}}, ("kwargs", "note", 1), "lone UTF-16 surrogate"),
        ({"kwargs": {"m": {"\udfff": 1}}}, ("kwargs", "m"), "a key: a string with a lone"),
        ({"args": [2**64]}, ("args", 0), "integers must lie between"),
        ({"args": ["x" * 262_144]}, ("args",), "at most 262144 bytes as JSON"),
        ({"task": "no spaces"}, ("task",), "'no spaces' is not a task name"),
        ({"url": "http://x/"}, ("url",), "Extra inputs are not permitted"),
    ],
)
def test_arguments_that_are_not_json_are_named(
    arguments: dict[str, Any], loc: tuple[str | int, ...], message: str
) -> None:
    found = errors({"type": "python", "task": "t", **arguments})
    assert len(found) == 1
    assert found[0][0] == ("target", *loc)
    assert message in found[0][1]


def test_a_python_target_needs_a_task() -> None:
    assert errors({"type": "python"}) == [(("target", "task"), "Field required")]
