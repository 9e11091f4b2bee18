"""Wire shapes of the API's accounts, secrets, cluster, overview, targets and audit routes:
shared by the routes and ``kairos.client``, so they import nothing of FastAPI or the engine."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from kairos.identity import MAX_KEY_LIFETIME_S, Scope

__all__ = [
    "AuditOut",
    "AuditPage",
    "ClusterOut",
    "EndedRunsOut",
    "JobRunCountsList",
    "JobRunCountsOut",
    "KeyIn",
    "KeyList",
    "KeyOut",
    "LagOut",
    "NewKeyOut",
    "NextFireOut",
    "NodeOut",
    "OverviewOut",
    "SecretIn",
    "SecretList",
    "SecretOut",
    "SecretSet",
    "TargetHostOut",
    "TargetsOut",
    "TokenOut",
    "WhoAmI",
]


# Auth --------------------------------------------------------------------------------------------


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the token is valid")
    scope: str = Field(description="The scopes granted, space-separated")


class WhoAmI(BaseModel):
    name: str = Field(description="As the audit log names the caller")
    scopes: list[Scope]


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="What the key is for")
    scopes: list[Scope] = Field(min_length=1)
    expires_in: float | None = Field(
        default=None,
        gt=0,
        le=MAX_KEY_LIFETIME_S,
        description="Seconds until the key stops working (at most ten years); null: never",
    )


class KeyOut(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    key: str = Field(description="The key itself: shown only now, and kept nowhere")


class KeyList(BaseModel):
    items: list[KeyOut]


# Secrets -----------------------------------------------------------------------------------------


class SecretIn(BaseModel):
    value: str = Field(min_length=1, max_length=65_536, repr=False)


class SecretSet(BaseModel):
    name: str
    created: bool


class SecretOut(BaseModel):
    name: str
    created_at: datetime
    updated_at: datetime


class SecretList(BaseModel):
    items: list[SecretOut]


# Cluster and targets -----------------------------------------------------------------------------


class NodeOut(BaseModel):
    id: str
    hostname: str
    started_at: str
    heartbeat_age_s: float = Field(description="Seconds since its last heartbeat (database clock)")
    running: int = Field(description="Runs it holds now")
    this_node: bool = Field(description="True for the node that answered this request")


class ClusterOut(BaseModel):
    node_id: str
    node_lease_s: float
    nodes: list[NodeOut]


# Overview ----------------------------------------------------------------------------------------


class EndedRunsOut(BaseModel):
    """Runs ended, by how they ended."""

    succeeded: int
    failed: int
    missed: int
    skipped: int
    interrupted: int
    cancelled: int


class NextFireOut(BaseModel):
    job_id: str
    next_run_time: datetime = Field(description="When the fire is due (UTC), jitter included")


class LagOut(BaseModel):
    """How late this node's calls began (after their due time), over the last minute."""

    calls: int = Field(description="Calls begun by this node in the last minute")
    mean_s: float
    max_s: float


class OverviewOut(BaseModel):
    at: datetime = Field(description="When this was read (UTC)")
    ended_last_hour: EndedRunsOut = Field(description="Runs ended in the last hour, every node")
    ended_last_24h: EndedRunsOut = Field(description="Runs ended in the last 24 hours")
    running: int = Field(description="Runs in flight, every node")
    queued: int = Field(description="Queued runs: retries, runs now, runs waiting for a slot")
    failing: int = Field(description="Jobs whose last call failed or was interrupted")
    failing_jobs: list[str] = Field(description="The first of them, the latest failure first")
    tripped: int = Field(description="Jobs paused by the circuit breaker")
    tripped_jobs: list[str] = Field(description="The first of them, by id")
    next_fires: list[NextFireOut] = Field(description="The jobs due soonest")
    lag: LagOut
    node_id: str = Field(description="The node that answered")
    nodes: list[NodeOut]


class JobRunCountsOut(BaseModel):
    job_id: str
    runs: EndedRunsOut = Field(description="Ended runs kept in the job's history, by status")
    success_rate: float | None = Field(
        description="succeeded / (succeeded + failed + interrupted) over the kept history; null"
        " with no call ended"
    )
    last_status: str | None = Field(
        description="How the job's last call ended: succeeded, failed or interrupted"
    )
    last_ended_at: datetime | None


class JobRunCountsList(BaseModel):
    items: list[JobRunCountsOut]


class TargetHostOut(BaseModel):
    host: str = Field(description="host:port; calls to one share these limits")
    limit: int = Field(description="Calls this process may have in flight there now")
    max_concurrency: int = Field(description="The most the limit may grow to")
    max_per_second: float | None
    adaptive: bool
    in_flight: int
    waiting: int = Field(description="Runs due and waiting for a slot there")
    calls: int = Field(description="Calls started there since this process started")
    overloads: int = Field(description="Calls that showed it overloaded")
    connect_retries: int = Field(description="Calls that never left and were tried again")
    fastest_s: float | None = Field(description="Its fastest answer of late, in seconds")
    last_connect_error: str | None


class TargetsOut(BaseModel):
    node_id: str
    runs_in_flight: int
    runs_parked: int = Field(description="Runs waiting for their host, or to connect again")
    hosts: list[TargetHostOut]


# Audit -------------------------------------------------------------------------------------------


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="user:<name>, key:<id>, admin-token, cli:<user>, ...")
    action: str = Field(description="job.create, job.replace, job.pause, key.revoke, ...")
    target: str = Field(description="The job id, key id or user name changed")
    detail: Any = Field(description="What changed (secrets masked), or null")


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None
