"""What a job calls: its target, one model per kind, told apart by ``type``.

A target is data, like the rest of a spec; calling it is the work of the executor of its kind
(``kairos.executors``). Each kind says which of its values are secrets: masked as ``"***"`` in
what the API shows, and kept from the stored target when sent back so.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from kairos.errors import InvalidField
from kairos.masking import SECRET_MASK, kept_password, masked_url, same_origin
from kairos.references import Reference, Template, parse, references_in_json, render_json
from kairos.specs import Spec, stored

__all__ = [
    "MAX_BODY_BYTES",
    "TASK_NAME_PATTERN",
    "HttpMethod",
    "HttpTarget",
    "PythonTarget",
    "TargetSpec",
    "TemplateAt",
    "check_task_name",
]

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

_ALWAYS_SECRET = frozenset({"authorization", "proxy-authorization"})
# What the JSON encoder that sends bodies takes: a signed or an unsigned 64-bit integer.
_INT_MIN, _UINT_MAX = -(2**63), 2**64 - 1
_MAX_BODY_DEPTH = 128
# Valid JSON syntax and a Python str, but no text: nothing could write it, to a database or a
# request. The API refuses it in the body; callers in Python (Kairos.put_job) meet it here.
_NOT_TEXT = "a string with a lone UTF-16 surrogate (such as \\ud800) is not text"
MAX_BODY_BYTES = 262_144
"""The largest target body, serialized (a string as UTF-8, an object or array as compact JSON)."""
TASK_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$"
"""What a task's name may be: a Python identifier, dotted or namespaced (``reports.daily``)."""
_TASK_NAME = re.compile(TASK_NAME_PATTERN)
TemplateAt = tuple[tuple[str | int, ...], Template]
"""A string that holds references, and where it is in a spec (``("headers", "Authorization")``)."""
# RFC 9110's token: what a header name may be made of.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters other than a tab end or corrupt the header line they are sent in.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Hop-by-hop headers and those the HTTP client computes from the request itself: set by hand
# they contradict the framing the client sends (Transfer-Encoding beside Content-Length).
_FRAMING_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def check_task_name(name: str) -> str:
    """``name`` if it may name a task, else ``ValueError`` saying what a name may be."""
    if not _TASK_NAME.fullmatch(name):
        raise ValueError(
            f"{name[:140]!r} is not a task name: letters, digits and _ . : - (a letter or _ "
            "first), at most 128 characters"
        )
    return name


class HttpTarget(Spec):
    type: Literal["http"] = "http"
    url: AnyHttpUrl
    """A password in it (``https://user:password@host/``) is a secret, like a secret header."""
    method: HttpMethod = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: list[str] = Field(default_factory=list)
    """Headers whose values are secrets (``Authorization`` and ``Proxy-Authorization`` always
    are): the API never returns them but as ``"***"``, and Kairos never logs them."""
    body: str | dict[str, Any] | list[Any] | None = None
    """A string is sent as is; an object or array as JSON (``Content-Type: application/json``)."""
    timeout: float | None = Field(default=None, gt=0, le=86_400)
    """Seconds for the whole call; ``null`` means the server's ``KAIROS_DEFAULT_HTTP_TIMEOUT``."""
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    """This job's calls start only while fewer calls than this are in flight to its host."""
    max_per_second: float | None = Field(default=None, gt=0, le=100_000)
    """This job's calls start at most this often to its host (calls a second)."""

    @property
    def host_key(self) -> str:
        """``host:port``: calls to one key share its politeness limits."""
        return f"{self.url.host}:{self.url.port}"

    @property
    def task_needed(self) -> str | None:
        """Any node can call a URL."""
        return None

    @field_validator("headers")
    @classmethod
    def _header_syntax(cls, headers: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if stored(info):
            return headers
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"invalid header name {name!r}")
            if _CONTROL.search(value):
                raise ValueError(f"header {name!r} must not hold control characters or line breaks")
            if name.lower().startswith("x-kairos-"):
                raise ValueError(f"header {name!r}: X-Kairos-* headers are set by Kairos")
            if name.lower() in _FRAMING_HEADERS:
                raise ValueError(f"header {name!r} is set by the HTTP client: leave it out")
        return headers

    @field_validator("body")
    @classmethod
    def _json_body(cls, body: Any, info: ValidationInfo) -> Any:
        if body is None or stored(info):
            return body
        if not isinstance(body, str):
            _check_json(body)
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        if len(text.encode()) > MAX_BODY_BYTES:
            raise ValueError(f"must be at most {MAX_BODY_BYTES} bytes once serialized")
        return body

    @model_validator(mode="after")
    def _secrets_are_headers(self) -> HttpTarget:
        present = {name.lower() for name in self.headers}
        for name in self.secret_headers:
            if name.lower() not in present:
                raise ValueError(f"secret_headers names {name!r}, which is not in headers")
        return self

    @model_validator(mode="after")
    def _well_formed_references(self, info: ValidationInfo) -> HttpTarget:
        if stored(info):
            return self
        errors: list[InitErrorDetails] = []
        for name, value in self.headers.items():
            try:
                parse(value)
            except ValueError as exc:
                errors.append(_error(("headers", name), value, str(exc)))
        try:
            list(references_in_json(self.body))
        except ValueError as exc:
            errors.append(_error(("body", *exc.args[1]), self.body, exc.args[0]))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copy = super().model_copy(update=update, deep=deep)
        if update:
            copy.__dict__.pop("templates", None)  # found again in the new values when asked
        return copy

    @cached_property
    def templates(self) -> list[TemplateAt]:
        """The header values and body strings that hold references (or ``$${`` escapes),
        found once per target: a target without any is called as it is."""
        found: list[TemplateAt] = []
        for name, value in self.headers.items():
            template = parse(value)
            if template is not None:
                found.append((("headers", name), template))
        found.extend((("body", *path), t) for path, t in references_in_json(self.body))
        return found

    def resolved(self, value_of: Callable[[Reference], str]) -> HttpTarget:
        """This target with its references replaced by ``value_of(reference)``, to be called."""
        if not self.templates:
            return self
        headers = {}
        for name, value in self.headers.items():
            template = parse(value)
            headers[name] = value if template is None else template.render(value_of)
        body = render_json(self.body, value_of)
        return self.model_copy(update={"headers": headers, "body": body})

    def secret_names(self) -> set[str]:
        """The secret headers present, lower-cased."""
        present = {name.lower() for name in self.headers}
        return present & (_ALWAYS_SECRET | {name.lower() for name in self.secret_headers})

    @property
    def sends_masks(self) -> bool:
        """Some value is ``"***"``: the target means to keep a stored secret."""
        return self.url.password == SECRET_MASK or SECRET_MASK in self.headers.values()

    def masked(self) -> HttpTarget:
        """This target with every secret (header value, URL password) shown as ``"***"``. A
        secret header whose value holds a reference is shown as written: a reference is no
        secret (its text around the reference, such as ``Bearer``, is shown with it)."""
        secret = self.secret_names()
        if not secret and self.url.password is None:
            return self
        shown = {
            k: SECRET_MASK if k.lower() in secret and not _refers(v) else v
            for k, v in self.headers.items()
        }
        return self.model_copy(update={"headers": shown, "url": masked_url(self.url)})

    def keeping_secrets(self, stored: TargetSpec | None) -> HttpTarget:
        """This target with each secret sent as ``"***"`` given its value in ``stored`` (the
        target it replaces). ``InvalidField`` naming the field if there is none to keep, or if
        the target moves to another origin: a kept secret only goes where it was given for."""
        if not isinstance(stored, HttpTarget):
            stored = None  # another kind of target keeps no secret for this one
        secret = self.secret_names()
        masks = [k for k, v in self.headers.items() if v == SECRET_MASK and k.lower() in secret]
        kept = {}
        if stored is not None:
            was_secret = stored.secret_names()
            kept = {k.lower(): v for k, v in stored.headers.items() if k.lower() in was_secret}
        headers = dict(self.headers)
        for name in masks:
            if stored is None or name.lower() not in kept:
                raise InvalidField(
                    ["headers"],
                    f"{name!r} is {SECRET_MASK!r}, which keeps the value stored for it, "
                    "but there is none: send the value itself",
                )
            same_origin(["headers"], self.url, stored.url)
            headers[name] = kept[name.lower()]
        url = kept_password(self.url, None if stored is None else stored.url)
        return self.model_copy(update={"headers": headers, "url": url})


class PythonTarget(Spec):
    """A function of the application that embeds Kairos, registered under ``task`` in its
    ``kairos.tasks.TaskRegistry`` and called with ``args`` and ``kwargs``: JSON values, checked
    against the function's signature where the registry is known."""

    type: Literal["python"]
    task: Annotated[str, AfterValidator(check_task_name)]
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0, le=86_400)
    """Seconds the function may run; ``null`` means ``KAIROS_DEFAULT_HTTP_TIMEOUT``, as for an
    HTTP target."""

    @model_validator(mode="after")
    def _json_arguments(self, info: ValidationInfo) -> PythonTarget:
        if stored(info):
            return self
        errors: list[InitErrorDetails] = []
        for field, values in (("args", self.args), ("kwargs", self.kwargs)):
            problem = _not_json(values)
            if problem is not None:
                where, message = problem
                errors.append(_error((field, *where), values, message))
        if not errors and _json_size([self.args, self.kwargs]) > MAX_BODY_BYTES:
            message = f"args and kwargs must be at most {MAX_BODY_BYTES} bytes as JSON"
            errors.append(_error(("args",), self.args, message))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @property
    def task_needed(self) -> str | None:
        """Only a node that registered the task can call it: the others leave its fires."""
        return self.task

    @property
    def sends_masks(self) -> bool:
        """Never: a function's arguments hold no secrets Kairos keeps from view."""
        return False

    def masked(self) -> PythonTarget:
        return self

    @property
    def templates(self) -> list[TemplateAt]:
        """None: a function's arguments are passed as written."""
        return []

    def resolved(self, value_of: Callable[[Reference], str]) -> PythonTarget:
        return self

    def keeping_secrets(self, stored: TargetSpec | None) -> PythonTarget:
        return self


def _refers(value: str) -> bool:
    """``value`` holds a reference (it parsed when it was stored)."""
    try:
        template = parse(value)
    except ValueError:
        return False
    return template is not None and bool(template.references)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def _error(loc: tuple[str | int, ...], value: Any, message: str) -> InitErrorDetails:
    return {"type": "value_error", "loc": loc, "input": value, "ctx": {"error": message}}


def _not_json(value: Any) -> tuple[tuple[str | int, ...], str] | None:
    """Where in ``value`` (a path of keys and indexes) something is not JSON, and what, or None
    when all of it is: objects with string keys, arrays, strings, finite numbers within 64
    bits, booleans and null, nested at most ``_MAX_BODY_DEPTH`` levels."""
    level: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    for _ in range(_MAX_BODY_DEPTH):
        deeper: list[tuple[tuple[str | int, ...], Any]] = []
        for path, item in level:
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return path, f"object keys must be strings, not {type(key).__name__}"
                    if not _is_text(key):
                        return path, f"a key: {_NOT_TEXT}"
                    deeper.append(((*path, key), child))
            elif isinstance(item, list):
                deeper.extend(((*path, index), child) for index, child in enumerate(item))
            elif isinstance(item, float) and not math.isfinite(item):
                return path, "NaN and infinity are not JSON numbers"
            elif isinstance(item, int) and not _INT_MIN <= item <= _UINT_MAX:
                return path, f"integers must lie between {_INT_MIN} and {_UINT_MAX}"
            elif isinstance(item, str) and not _is_text(item):
                return path, _NOT_TEXT
            elif item is not None and not isinstance(item, str | int | float):
                return path, f"a {type(item).__name__} is not a JSON value"
        if not deeper:
            return None
        level = deeper
    return (), f"nested deeper than {_MAX_BODY_DEPTH} levels"


def _check_json(body: dict[str, Any] | list[Any]) -> None:
    """``ValueError`` unless the body can be stored and sent as JSON: nested deeper than JSON
    encoders go it would be accepted here and then fail to be written; NaN or infinity would be
    sent as null, and an integer beyond 64 bits could not be sent at all."""
    level: list[Any] = [body]
    for _ in range(_MAX_BODY_DEPTH):
        if any(isinstance(item, float) and not math.isfinite(item) for item in level):
            raise ValueError("NaN and infinity are not JSON numbers")
        if any(isinstance(item, int) and not _INT_MIN <= item <= _UINT_MAX for item in level):
            raise ValueError(f"integers must lie between {_INT_MIN} and {_UINT_MAX}")
        keys = (key for item in level if isinstance(item, dict) for key in item)
        if any(isinstance(item, str) and not _is_text(item) for item in (*level, *keys)):
            raise ValueError(_NOT_TEXT)
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return
    raise ValueError(f"nested deeper than {_MAX_BODY_DEPTH} levels")


def _is_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _target_type(target: Any) -> str:
    """The ``type`` of a target, as JSON or as a model; "http" when it is left out."""
    kind = (
        target.get("type", "http") if isinstance(target, dict) else getattr(target, "type", "http")
    )
    return str(kind)


def _errors_at_their_fields(target: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate ``target``, its errors named as a client wrote them: ``target.url``, not
    pydantic's ``target.http.url`` (which names the union member), and an unknown ``type``
    as ``target.type``."""
    try:
        return handler(target)
    except ValidationError as exc:
        tag = (_target_type(target),)
        errors: list[InitErrorDetails] = []
        for error in exc.errors(include_url=False):
            kind, loc, value, ctx = error["type"], error["loc"], error["input"], error.get("ctx")
            if kind == "union_tag_invalid":
                kind, loc, value = "literal_error", ("type",), target["type"]
                first, _, last = str(ctx and ctx["expected_tags"]).rpartition(", ")
                ctx = {"expected": f"{first} or {last}" if first else last}
            elif loc[:1] == tag:
                loc = loc[1:]
            details: InitErrorDetails = {"type": kind, "loc": loc, "input": value}
            if ctx:
                details["ctx"] = ctx
            errors.append(details)
        raise ValidationError.from_exception_data(exc.title, errors) from None


TargetSpec = Annotated[
    Annotated[HttpTarget, Tag("http")] | Annotated[PythonTarget, Tag("python")],
    Discriminator(_target_type),
    WrapValidator(_errors_at_their_fields),
]
"""What a job calls, told apart by ``type``: "http" (``HttpTarget``, which may be left out) or
"python" (``PythonTarget``)."""
