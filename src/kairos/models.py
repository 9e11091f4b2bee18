"""The shapes of jobs, triggers, targets and runs, as clients send and read them.

Specs are data: a stored job is its validated JSON spec plus bookkeeping columns; the behaviour
(fire-time math, calling the target) lives in ``triggers`` and ``executors``.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    Tag,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails

from kairos.errors import InvalidField
from kairos.masking import SECRET_MASK, kept_password, masked_url, same_origin

__all__ = [
    "FIRST_YEAR",
    "JOB_ID_PATTERN",
    "LAST_YEAR",
    "MAX_BODY_BYTES",
    "SECRET_MASK",
    "TAG_PATTERN",
    "CronTriggerSpec",
    "DateTriggerSpec",
    "HistoryPolicy",
    "HostLimitSpec",
    "HttpMethod",
    "HttpTarget",
    "IntervalTriggerSpec",
    "JobId",
    "JobRecord",
    "JobSpec",
    "JobState",
    "RetryPolicy",
    "RunRecord",
    "RunStatus",
    "TargetSpec",
    "TriggerSpec",
    "Webhook",
    "parse_zone",
    "reachable_id",
]

JOB_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
TAG_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


def reachable_id(job_id: str) -> str:
    """``job_id``, or ``ValueError`` if it is ``.`` or ``..``: clients and proxies resolve
    those in a URL's path, so ``/jobs/..`` could never reach the job."""
    if job_id in (".", ".."):
        raise ValueError(f"{job_id!r} cannot be a job id: URLs cannot name it")
    return job_id


JobId = Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN), AfterValidator(reachable_id)]
"""A job's id: 1-128 of ``[A-Za-z0-9_.:-]``, but not ``.`` or ``..``."""

CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class _Spec(BaseModel):
    # No NaN or infinity: they are not JSON, and no duration or limit means them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _in_range(value: datetime, info: ValidationInfo) -> datetime:
    """A trigger's date between 1970 and 2999: the schedule's arithmetic (a day before, a
    second after) must stay within the dates Python can represent."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR and not _stored(info):
        raise ValueError(f"must be between the years {FIRST_YEAR} and {LAST_YEAR}")
    return value


FIRST_YEAR, LAST_YEAR = 1970, 2999
_STORED = {"stored": True}


def _stored(info: ValidationInfo) -> bool:
    """Validating a spec the store kept (``JobSpec.from_stored``): checks added to the API
    since it was written do not apply to it."""
    return bool(info.context and info.context.get("stored"))


_Date = Annotated[datetime, AfterValidator(_in_range)]


class _TriggerSpec(_Spec):
    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Unset optional trigger fields read as noise in responses and stored specs.
        return {k: v for k, v in handler(self).items() if v is not None}


class _RecurringBounds(_TriggerSpec):
    start_date: _Date | None = None
    """First instant a fire may happen at; naive values are read in the job's time zone."""
    end_date: _Date | None = None
    """No fire after this instant; naive values are read in the job's time zone."""
    jitter: float | None = Field(default=None, ge=0, le=86_400)
    """Each fire is delayed by a random 0..jitter seconds (the run keeps the nominal time)."""


class CronTriggerSpec(_RecurringBounds):
    """A crontab ``expression`` or APScheduler-style fields, never both."""

    type: Literal["cron"]
    expression: str | None = Field(default=None, min_length=1, max_length=256)
    year: str | int | None = None
    month: str | int | None = None
    day: str | int | None = None
    week: str | int | None = None
    day_of_week: str | int | None = None
    hour: str | int | None = None
    minute: str | int | None = None
    second: str | int | None = None

    @model_validator(mode="after")
    def _one_form(self) -> CronTriggerSpec:
        fields = [name for name in CRON_FIELDS if getattr(self, name) is not None]
        if self.expression is not None and fields:
            raise ValueError(f"give either 'expression' or the fields {fields}, not both")
        if self.expression is None and not fields:
            raise ValueError(
                "a cron trigger needs 'expression' (e.g. '0 2 * * *') or at least one of "
                + ", ".join(CRON_FIELDS)
            )
        return self


class IntervalTriggerSpec(_RecurringBounds):
    """Fires every ``weeks + days + hours + minutes + seconds`` of elapsed time."""

    type: Literal["interval"]
    weeks: float = Field(default=0, ge=0)
    days: float = Field(default=0, ge=0)
    hours: float = Field(default=0, ge=0)
    minutes: float = Field(default=0, ge=0)
    seconds: float = Field(default=0, ge=0)

    @property
    def total_seconds(self) -> float:
        return (
            self.weeks * 604_800
            + self.days * 86_400
            + self.hours * 3_600
            + self.minutes * 60
            + self.seconds
        )

    @model_validator(mode="after")
    def _positive(self) -> IntervalTriggerSpec:
        total = self.total_seconds
        if total < 0.001:
            raise ValueError(
                "the interval must be at least 1 ms (set weeks/days/hours/minutes/seconds)"
            )
        if total > 100 * 366 * 86_400:
            raise ValueError("the interval must be at most 100 years")
        return self


class DateTriggerSpec(_TriggerSpec):
    """Fires once at ``run_date`` (naive values are read in the job's time zone)."""

    type: Literal["date"]
    run_date: _Date


TriggerSpec = Annotated[
    CronTriggerSpec | IntervalTriggerSpec | DateTriggerSpec, Field(discriminator="type")
]


_ALWAYS_SECRET = frozenset({"authorization", "proxy-authorization"})
# What the JSON encoder that sends bodies takes: a signed or an unsigned 64-bit integer.
_INT_MIN, _UINT_MAX = -(2**63), 2**64 - 1
_MAX_BODY_DEPTH = 128
MAX_BODY_BYTES = 262_144
"""The largest target body, serialized (a string as UTF-8, an object or array as compact JSON)."""
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


class HostLimitSpec(_Spec):
    """The politeness limits of one target host (``KAIROS_HOST_LIMITS``)."""

    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    """Most calls in flight to the host; None: ``KAIROS_HOST_MAX_CONCURRENCY``."""
    max_per_second: float | None = Field(default=None, gt=0, le=100_000)
    adaptive: bool = True
    """False: ``max_concurrency`` from the first call on, never lowered."""


class HttpTarget(_Spec):
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

    @field_validator("headers")
    @classmethod
    def _header_syntax(cls, headers: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if _stored(info):
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
        if body is None or _stored(info):
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

    def secret_names(self) -> set[str]:
        """The secret headers present, lower-cased."""
        present = {name.lower() for name in self.headers}
        return present & (_ALWAYS_SECRET | {name.lower() for name in self.secret_headers})

    @property
    def sends_masks(self) -> bool:
        """Some value is ``"***"``: the target means to keep a stored secret."""
        return self.url.password == SECRET_MASK or SECRET_MASK in self.headers.values()

    def masked(self) -> HttpTarget:
        """This target with every secret (header value, URL password) shown as ``"***"``."""
        secret = self.secret_names()
        if not secret and self.url.password is None:
            return self
        shown = {k: SECRET_MASK if k.lower() in secret else v for k, v in self.headers.items()}
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
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return
    raise ValueError(f"nested deeper than {_MAX_BODY_DEPTH} levels")


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
                ctx = {"expected": ctx and ctx["expected_tags"]}
            elif loc[:1] == tag:
                loc = loc[1:]
            details: InitErrorDetails = {"type": kind, "loc": loc, "input": value}
            if ctx:
                details["ctx"] = ctx
            errors.append(details)
        raise ValidationError.from_exception_data(exc.title, errors) from None


TargetSpec = Annotated[
    Annotated[HttpTarget, Tag("http")],
    Discriminator(_target_type),
    WrapValidator(_errors_at_their_fields),
]
"""What a job calls, told apart by ``type``; "http" (``HttpTarget``) may be left out."""


class RetryPolicy(_Spec):
    """How a failed fire is tried again: each attempt is a run of its own, with its number, and
    only failures that may pass on another try are retried (see ``Outcome.retryable``)."""

    max_attempts: int = Field(default=3, ge=1, le=100)
    """Attempts in all, the first included (1: no retry)."""
    initial_delay: float = Field(default=1.0, ge=0, le=86_400)
    """Seconds before the second attempt."""
    max_delay: float = Field(default=60.0, ge=0, le=86_400)
    """The longest wait between attempts (a target's ``Retry-After`` may ask for longer)."""
    multiplier: float = Field(default=2.0, ge=1, le=100)
    """Each wait is this many times the one before."""
    jitter: float = Field(default=0.1, ge=0, le=1)
    """Each wait is moved at random by up to this fraction of it, so retries spread out."""

    @model_validator(mode="after")
    def _delays_in_order(self) -> RetryPolicy:
        if self.max_delay < self.initial_delay:
            raise ValueError("max_delay must be at least initial_delay")
        return self


class Webhook(_Spec):
    """Where Kairos tells of an event (a failed fire, a pause): a JSON ``POST``, signed with
    ``secret`` (HMAC-SHA256) when there is one."""

    url: AnyHttpUrl
    """A password in it is a secret, as ``secret`` is."""
    secret: str | None = Field(default=None, min_length=1, max_length=1_000, repr=False)
    """Shown as ``"***"``; sent back so in a replacement, it keeps the stored one."""

    @property
    def sends_masks(self) -> bool:
        return SECRET_MASK in (self.secret, self.url.password)

    def masked(self) -> Webhook:
        """This webhook with its secret and its URL's password shown as ``"***"``."""
        if self.secret is None and self.url.password is None:
            return self
        secret = None if self.secret is None else SECRET_MASK
        return self.model_copy(update={"secret": secret, "url": masked_url(self.url)})

    def keeping_secrets(self, stored: Webhook | None) -> Webhook:
        """As ``HttpTarget.keeping_secrets``: ``"***"`` keeps the stored secret or password,
        only for a URL of the same origin."""
        secret = self.secret
        if secret == SECRET_MASK:
            if stored is None or stored.secret is None:
                message = f"{SECRET_MASK!r} keeps the stored secret, but there is none: send it"
                raise InvalidField(["secret"], message)
            same_origin(["secret"], self.url, stored.url)
            secret = stored.secret
        url = kept_password(self.url, None if stored is None else stored.url)
        return self.model_copy(update={"secret": secret, "url": url})


class HistoryPolicy(_Spec):
    """How much of a job's run history is kept; a field left ``null`` takes the server's
    ``KAIROS_RUNS_KEEP_PER_JOB`` / ``KAIROS_RUNS_MAX_AGE``."""

    max_runs: int | None = Field(default=None, ge=1, le=1_000_000)
    """The newest this many finished runs are kept."""
    max_age: float | None = Field(default=None, gt=0, le=100 * 366 * 86_400)
    """Finished runs older than this many seconds are deleted."""


class JobSpec(_Spec):
    """Everything a client sets on a job; ``PUT /jobs/{id}`` replaces all of it."""

    trigger: TriggerSpec
    target: TargetSpec
    timezone: str = Field(default="UTC", max_length=64)
    """IANA zone the cron fields and naive dates are read in."""
    max_instances: int = Field(default=1, ge=1, le=10_000)
    misfire_grace_time: float | None = Field(default=60, gt=0, le=365 * 86_400)
    """A fire later than this many seconds is recorded as ``missed``; ``null``: run however late."""
    coalesce: bool = True
    """When several fires are due at once (after downtime), run only the latest of them."""
    retry: RetryPolicy | None = None
    """Retries of a failed fire; ``null``: none."""
    max_consecutive_failures: int | None = Field(default=None, ge=1, le=10_000)
    """The circuit breaker: after this many failed fires in a row the job is paused; ``null``
    disables it. Left out, the server's ``KAIROS_MAX_CONSECUTIVE_FAILURES`` applies."""
    auto_resume_after: float | None = Field(default=None, gt=0, le=365 * 86_400)
    """Seconds after the breaker pauses the job that one probe fire runs: success resumes the
    job, failure keeps it paused until the next probe. ``null``: it stays paused."""
    deadline: float | None = Field(default=None, gt=0, le=365 * 86_400)
    """Seconds after its scheduled time by which a fire, retries included, must be done: no
    attempt starts later, and an attempt's timeout is cut to end by then."""
    on_failure: Webhook | None = None
    """Told of each failed fire (its last attempt failed), and of each failed manual run."""
    on_pause: Webhook | None = None
    """Told when the circuit breaker pauses the job."""
    history: HistoryPolicy | None = None
    """Run history kept for this job; ``null``: the server's defaults."""
    paused: bool = False
    description: str = Field(default="", max_length=2_000)
    tags: list[Annotated[str, StringConstraints(pattern=TAG_PATTERN)]] = Field(
        default_factory=list, max_length=20
    )
    """Labels to find the job by (``GET /jobs?tag=``); kept sorted, each once."""

    @field_validator("tags")
    @classmethod
    def _sorted_once(cls, tags: list[str]) -> list[str]:
        return sorted(set(tags))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        parse_zone(name)
        return name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_stored(cls, text: str | bytes) -> JobSpec:
        """A spec from its JSON as the store kept it. Checks added to the API since it was
        written (date ranges, body depth) are not applied: an upgrade never makes a stored job
        unreadable; changing such a job applies them."""
        return cls.model_validate_json(text, context=_STORED)

    def masked(self) -> JobSpec:
        """This spec as the API shows it: every secret as ``"***"`` (itself if it has none)."""
        changes: dict[str, Any] = {"target": self.target.masked()}
        for name in _WEBHOOKS:
            hook = getattr(self, name)
            if hook is not None:
                changes[name] = hook.masked()
        if all(value is getattr(self, name) for name, value in changes.items()):
            return self
        return self.model_copy(update=changes)

    @property
    def sends_masks(self) -> bool:
        """Some value is ``"***"``: the spec means to keep a stored secret."""
        hooks = (getattr(self, name) for name in _WEBHOOKS)
        return self.target.sends_masks or any(hook and hook.sends_masks for hook in hooks)

    def keeping_secrets(self, stored: JobSpec | None) -> JobSpec:
        """This spec, replacing ``stored``, with each secret sent as ``"***"`` given its stored
        value; ``InvalidField`` naming it if nothing is stored behind a mask, or if the mask
        would send the stored secret to another origin (see ``HttpTarget.keeping_secrets``)."""
        if not self.sends_masks:
            return self  # the usual case
        target = _within("target", self.target.keeping_secrets, stored.target if stored else None)
        changes: dict[str, Any] = {"target": target}
        for name in _WEBHOOKS:
            hook = getattr(self, name)
            if hook is not None and hook.sends_masks:
                changes[name] = _within(name, hook.keeping_secrets, getattr(stored, name, None))
        return self.model_copy(update=changes)


_S = TypeVar("_S", bound=_Spec)


def _within(field: str, keep: Callable[[_S | None], _S], stored: _S | None) -> _S:
    """``keep(stored)``, its ``InvalidField`` named within ``field``."""
    try:
        return keep(stored)
    except InvalidField as exc:
        raise InvalidField([field, *exc.loc], exc.message) from None


_WEBHOOKS = ("on_failure", "on_pause")


def parse_zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; ``ValueError`` with a readable message if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, as "America"
        raise ValueError(f"unknown IANA time zone {name!r} (e.g. 'Europe/Berlin')") from None


class RunStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MISSED = "missed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


class JobState(enum.StrEnum):
    SCHEDULED = "scheduled"
    """Has a next fire."""
    PAUSED = "paused"
    TRIPPED = "tripped"
    """Paused by the circuit breaker (see ``pause_reason``)."""
    FINISHED = "finished"
    """Will not fire again (a date trigger that fired, an end date that passed)."""

    @classmethod
    def of(cls, paused: bool, tripped: bool, next_run_us: int | None) -> JobState:
        if tripped:
            return cls.TRIPPED
        if paused:
            return cls.PAUSED
        return cls.FINISHED if next_run_us is None else cls.SCHEDULED


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A stored job: its spec and the scheduling bookkeeping. Times are epoch microseconds."""

    id: str
    spec: JobSpec
    next_fire_us: int | None
    """Nominal time of the next fire (what ``X-Kairos-Scheduled-For`` will say)."""
    next_run_us: int | None
    """When the next fire is due: the nominal time plus its jitter. Null when paused or done."""
    created_us: int
    updated_us: int
    failures: int = 0
    """Failed fires in a row, for the circuit breaker."""
    pause_reason: str | None = None
    """Why the circuit breaker paused the job; None if it did not."""

    @property
    def state(self) -> JobState:
        return JobState.of(self.spec.paused, self.pause_reason is not None, self.next_run_us)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One fire (or manual run) of a job and what came of it. Times are epoch microseconds."""

    id: int
    job_id: str
    scheduled_for_us: int
    attempt: int
    status: RunStatus
    manual: bool = False
    node_id: str | None = None
    started_us: int | None = None
    finished_us: int | None = None
    http_status: int | None = None
    error: str | None = None
    response_excerpt: str | None = None
    due_us: int | None = None
    """When a queued run may start (a retry waits out its backoff); None once it has."""
