"""The shapes of jobs, triggers, targets and runs, as clients send and read them (the targets
themselves are in ``kairos.targets``, and named here too).

Specs are data: a stored job is its validated JSON spec plus bookkeeping columns; the behaviour
(fire-time math, calling the target) lives in ``triggers`` and ``executors``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from kairos.errors import InvalidField
from kairos.masking import SECRET_MASK, kept_password, masked_url, same_origin
from kairos.references import Reference, parse
from kairos.specs import STORED, Spec, stored
from kairos.targets import (
    MAX_BODY_BYTES,
    HttpMethod,
    HttpTarget,
    PythonTarget,
    TargetSpec,
    TemplateAt,
)

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
    "PythonTarget",
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


def _in_range(value: datetime, info: ValidationInfo) -> datetime:
    """A trigger's date between 1970 and 2999: the schedule's arithmetic (a day before, a
    second after) must stay within the dates Python can represent."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR and not stored(info):
        raise ValueError(f"must be between the years {FIRST_YEAR} and {LAST_YEAR}")
    return value


FIRST_YEAR, LAST_YEAR = 1970, 2999


_Date = Annotated[datetime, AfterValidator(_in_range)]


class _TriggerSpec(Spec):
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


class HostLimitSpec(Spec):
    """The politeness limits of one target host (``KAIROS_HOST_LIMITS``)."""

    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    """Most calls in flight to the host; None: ``KAIROS_HOST_MAX_CONCURRENCY``."""
    max_per_second: float | None = Field(default=None, gt=0, le=100_000)
    adaptive: bool = True
    """False: ``max_concurrency`` from the first call on, never lowered."""


class RetryPolicy(Spec):
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


class Webhook(Spec):
    """Where Kairos tells of an event (a failed fire, a pause): a JSON ``POST``, signed with
    ``secret`` (HMAC-SHA256) when there is one."""

    url: AnyHttpUrl
    """A password in it is a secret, as ``secret`` is."""
    secret: str | None = Field(default=None, min_length=1, max_length=1_000, repr=False)
    """Shown as ``"***"``; sent back so in a replacement, it keeps the stored one. It may be a
    reference (``${secret:name}``, ``${env:NAME}``), shown as written."""

    @field_validator("secret")
    @classmethod
    def _well_formed_references(cls, secret: str | None, info: ValidationInfo) -> str | None:
        if secret is not None and not stored(info):
            parse(secret)
        return secret

    @property
    def sends_masks(self) -> bool:
        return SECRET_MASK in (self.secret, self.url.password)

    @property
    def templates(self) -> list[TemplateAt]:
        """The secret, if it holds references."""
        template = None if self.secret is None else parse(self.secret)
        return [] if template is None else [(("secret",), template)]

    def resolved(self, value_of: Callable[[Reference], str]) -> Webhook:
        """This webhook with its secret's references replaced by ``value_of(reference)``."""
        if not (templates := self.templates):
            return self
        return self.model_copy(update={"secret": templates[0][1].render(value_of)})

    def masked(self) -> Webhook:
        """This webhook with its secret and its URL's password shown as ``"***"`` (a secret
        that holds a reference is shown as written)."""
        if self.secret is None and self.url.password is None:
            return self
        refers = any(template.references for _, template in self.templates)
        secret = None if self.secret is None else self.secret if refers else SECRET_MASK
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


class HistoryPolicy(Spec):
    """How much of a job's run history is kept; a field left ``null`` takes the server's
    ``KAIROS_RUNS_KEEP_PER_JOB`` / ``KAIROS_RUNS_MAX_AGE``."""

    max_runs: int | None = Field(default=None, ge=1, le=1_000_000)
    """The newest this many finished runs are kept."""
    max_age: float | None = Field(default=None, gt=0, le=100 * 366 * 86_400)
    """Finished runs older than this many seconds are deleted."""


class JobSpec(Spec):
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
        return cls.model_validate_json(text, context=STORED)

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
    def templates(self) -> list[TemplateAt]:
        """Every string of the spec that holds references, and where (``target.headers.X``,
        ``on_failure.secret``)."""
        found = [(("target", *loc), t) for loc, t in self.target.templates]
        for name in _WEBHOOKS:
            hook = getattr(self, name)
            if hook is not None:
                found.extend(((name, *loc), t) for loc, t in hook.templates)
        return found

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
        kept_target = partial(self.target.keeping_secrets, stored.target if stored else None)
        target = _within("target", kept_target)
        changes: dict[str, Any] = {"target": target}
        for name in _WEBHOOKS:
            hook = getattr(self, name)
            if hook is not None and hook.sends_masks:
                changes[name] = _within(
                    name, partial(hook.keeping_secrets, getattr(stored, name, None))
                )
        return self.model_copy(update=changes)


_T = TypeVar("_T")


def _within(field: str, keep: Callable[[], _T]) -> _T:
    """``keep()``, its ``InvalidField`` named within ``field``."""
    try:
        return keep()
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
    CANCELLED = "cancelled"
    """Stopped by ``POST /runs/{id}/cancel`` while queued or running; never retried."""


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
