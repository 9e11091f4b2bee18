"""Wire shapes of the HTTP API that are not job specs themselves, and record -> response maps."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator

from kairos.clock import from_us
from kairos.errors import InvalidField
from kairos.models import (
    TAG_PATTERN,
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
    "JOB_READ_ONLY",
    "MAX_BATCH",
    "JobApplyIn",
    "JobApplyOut",
    "JobBatchIn",
    "JobBatchOut",
    "JobCreate",
    "JobDocument",
    "JobOut",
    "JobPage",
    "PreviewIn",
    "PreviewOut",
    "RunOut",
    "RunPage",
    "TaskIn",
    "TaskOut",
    "job_out",
    "run_out",
]


JOB_READ_ONLY = frozenset(
    {
        "state",
        "next_run_time",
        "created_at",
        "updated_at",
        "consecutive_failures",
        "pause_reason",
        "waiting_for_task",
    }
)
"""The fields of a job as the API shows it (``JobOut``) that no client sets: a job document
sent back (``PUT``, ``POST /jobs``, ``POST /jobs:batch``) may hold them, and they are ignored."""


class JobDocument(JobSpec):
    """A job as ``PUT /jobs/{id}`` takes it: its spec, or the whole job as ``GET /jobs/{id}``
    answers it, whose ``id`` (optional) must be the URL's and whose read-only fields are
    ignored."""

    id: str | None = Field(default=None, description="optional: the URL's id")

    @model_validator(mode="before")
    @classmethod
    def _ignore_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict) and not JOB_READ_ONLY.isdisjoint(data):
            return {name: value for name, value in data.items() if name not in JOB_READ_ONLY}
        return data

    def spec(self) -> JobSpec:
        """The job's spec: its fields as validated here, and which of them the client set (a
        field left out takes the server's default, e.g. ``max_consecutive_failures``)."""
        fields = {name: value for name, value in self.__dict__.items() if name != "id"}
        return JobSpec.model_construct(self.model_fields_set - {"id"}, **fields)


class JobCreate(JobDocument):
    """A job with its id, as ``POST /jobs`` and each item of ``POST /jobs:batch`` take it."""

    id: JobId


MAX_BATCH = 10_000


class JobBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobCreate] = Field(min_length=1, max_length=MAX_BATCH)


class JobApplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobCreate] = Field(max_length=MAX_BATCH)
    dry_run: bool = False
    """Only compare: say what applying would do, and write nothing."""
    prune: bool = False
    """Also delete the jobs ``selector`` picks that no document names."""
    selector: str | None = Field(default=None, examples=["tag=nightly"])
    """``tag=T``: the jobs these documents own; required with ``prune``."""

    def prune_tag(self) -> str | None:
        """The tag of the jobs to prune (None: prune nothing); ``InvalidField`` for a selector
        that is not ``tag=<tag>``, or ``prune`` without one."""
        if self.selector is None:
            if self.prune:
                raise InvalidField(
                    ["selector"],
                    "prune deletes the jobs a selector picks: give one (tag=<tag>), so that"
                    " jobs these documents do not own are never deleted",
                )
            return None
        key, _, tag = self.selector.partition("=")
        if key != "tag" or not re.fullmatch(TAG_PATTERN, tag):
            raise InvalidField(["selector"], "a selector is tag=<tag>, e.g. tag=nightly")
        return tag if self.prune else None


class JobApplyOut(BaseModel):
    dry_run: bool
    created: list[str]
    changed: dict[str, list[str]] = Field(description="job id -> the fields that change")
    unchanged: list[str]
    deleted: list[str]


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
    waiting_for_task: str | None = Field(
        default=None,
        description="the python task no live node has registered: the job's fires wait, due,"
        " for a node that has it; null when some node can call the job",
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


def job_out(job: JobRecord, served: frozenset[str] | None) -> JobOut:
    """The job as the API shows it; ``served``: the python tasks live nodes have registered
    (``Scheduler.tasks_served``), None where it does not matter."""
    spec = job.spec
    zone = spec.zone
    needed = spec.target.task_needed
    return JobOut(
        id=job.id,
        waiting_for_task=needed if served is not None and needed not in served else None,
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


def _local(us: int | None, zone: ZoneInfo) -> datetime | None:
    return None if us is None else from_us(us).astimezone(zone)


def _utc(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)
