"""Wire shapes of the HTTP API that are not job specs themselves, and record -> response maps."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from kairos.clock import from_us
from kairos.errors import InvalidField
from kairos.models import (
    HistoryPolicy,
    HttpTarget,
    JobId,
    JobRecord,
    JobSpec,
    JobState,
    RetryPolicy,
    RunRecord,
    RunStatus,
    TargetSpec,
    TriggerSpec,
    Webhook,
    parse_zone,
)

__all__ = [
    "MAX_BATCH",
    "MAX_ID",
    "JobBatchIn",
    "JobBatchOut",
    "JobCreate",
    "JobOut",
    "JobPage",
    "PreviewIn",
    "PreviewOut",
    "RunOut",
    "RunPage",
    "TaskIn",
    "TaskOut",
    "decode_cursor",
    "encode_cursor",
    "encode_job_cursor",
    "id_cursor",
    "job_cursor",
    "job_out",
    "run_out",
]


class JobCreate(JobSpec):
    id: JobId

    def spec(self) -> JobSpec:
        """The job's spec: its fields as validated here, and which of them the client set (a
        field left out takes the server's default, e.g. ``max_consecutive_failures``)."""
        fields = {name: value for name, value in self.__dict__.items() if name != "id"}
        return JobSpec.model_construct(self.model_fields_set - {"id"}, **fields)


MAX_BATCH = 10_000


class JobBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobCreate] = Field(min_length=1, max_length=MAX_BATCH)


class JobBatchOut(BaseModel):
    created: int
    replaced: int


class JobOut(BaseModel):
    id: str
    trigger: TriggerSpec
    target: TargetSpec
    timezone: str
    max_instances: int
    misfire_grace_time: float | None
    coalesce: bool
    retry: RetryPolicy | None
    deadline: float | None
    max_consecutive_failures: int | None
    auto_resume_after: float | None
    on_failure: Webhook | None
    on_pause: Webhook | None
    history: HistoryPolicy | None
    paused: bool
    description: str
    tags: list[str]
    consecutive_failures: int = Field(description="failed fires in a row, for the breaker")
    pause_reason: str | None = Field(description="why the circuit breaker paused the job")
    state: JobState = Field(
        description="scheduled, paused, tripped (paused by the circuit breaker) or finished"
    )
    next_run_time: datetime | None = Field(description="in the job's time zone; null if none")
    created_at: datetime
    updated_at: datetime


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class RunOut(BaseModel):
    id: int
    job_id: str
    scheduled_for: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status: RunStatus
    attempt: int
    manual: bool
    node_id: str | None
    duration_ms: float | None
    http_status: int | None
    error: str | None
    response_excerpt: str | None
    due_at: datetime | None
    """When a queued run may start (a retry waits out its backoff); null otherwise."""


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


class TaskIn(BaseModel):
    """The seed's task shape: a crontab and a URL that Kairos calls with POST."""

    task_id: JobId
    crontab: str = Field(min_length=1, max_length=256)
    target_endpoint: AnyHttpUrl

    def to_spec(self) -> JobSpec:
        return JobSpec.model_validate(
            {
                "trigger": {"type": "cron", "expression": self.crontab},
                "target": HttpTarget(url=self.target_endpoint, method="POST"),
            }
        )


class TaskOut(BaseModel):
    job_id: str
    created: bool
    next_run_time: datetime | None


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trigger: TriggerSpec
    timezone: str = "UTC"
    count: int = Field(default=10, ge=1, le=1000)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        parse_zone(name)
        return name


class PreviewOut(BaseModel):
    timezone: str
    description: str = Field(description='The trigger in words, e.g. "At 02:00 on Sunday"')
    fire_times: list[datetime]


def job_out(job: JobRecord) -> JobOut:
    spec = job.spec
    zone = spec.zone
    return JobOut(
        id=job.id,
        consecutive_failures=job.failures,
        pause_reason=job.pause_reason,
        state=job.state,
        next_run_time=_local(job.next_run_us, zone) if not spec.paused else None,
        created_at=from_us(job.created_us),
        updated_at=from_us(job.updated_us),
        # The spec's fields as they are (models, not dicts): validating a model instance is a
        # type check, validating its dump builds it again (half of a page of jobs' time).
        **spec.masked().__dict__,
    )


def run_out(run: RunRecord) -> RunOut:
    duration = None
    if run.started_us is not None and run.finished_us is not None:
        duration = (run.finished_us - run.started_us) / 1000
    return RunOut(
        id=run.id,
        job_id=run.job_id,
        scheduled_for=from_us(run.scheduled_for_us),
        started_at=_utc(run.started_us),
        finished_at=_utc(run.finished_us),
        status=run.status,
        attempt=run.attempt,
        manual=run.manual,
        node_id=run.node_id,
        duration_ms=duration,
        http_status=run.http_status,
        error=run.error,
        response_excerpt=run.response_excerpt,
        due_at=_utc(run.due_us),
    )


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The key a cursor carries; ``InvalidField`` on ``cursor`` if it is not one of ours."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not key:
        raise InvalidField(["cursor"], "not a cursor this API returned", source="query")
    return key


def id_cursor(cursor: str | None) -> int | None:
    """The row id a cursor of runs or audit records carries; ``InvalidField`` on ``cursor`` if
    it is not one of ours."""
    key = decode_cursor(cursor)
    if key is None:
        return None
    if not _is_id(key):
        raise InvalidField(["cursor"], "not a cursor this API returned", source="query")
    return int(key)


def _is_id(text: str) -> bool:
    """Decimal digits of a 64-bit key (a database would overflow on a longer number)."""
    return text.isascii() and text.isdigit() and int(text) <= MAX_ID


MAX_ID = 2**63 - 1


def encode_job_cursor(job: JobRecord, by_next_run: bool) -> str:
    """Where a page of jobs ended: its last job's id, and its next run if ordered by it."""
    return encode_cursor(f"{job.next_run_us or '-'}/{job.id}" if by_next_run else job.id)


def job_cursor(cursor: str | None, *, by_next_run: bool) -> tuple[int | None, str] | None:
    """The ``JobQuery.after`` a cursor from ``encode_job_cursor`` carries."""
    key = decode_cursor(cursor)
    if key is None or not by_next_run:
        return None if key is None else (None, key)
    due, _, job_id = key.partition("/")
    if not job_id or not (due == "-" or _is_id(due)):
        raise InvalidField(["cursor"], "not a cursor of this order (sort)", source="query")
    return (None if due == "-" else int(due)), job_id


def _local(us: int | None, zone: ZoneInfo) -> datetime | None:
    return None if us is None else from_us(us).astimezone(zone)


def _utc(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)
