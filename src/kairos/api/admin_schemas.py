"""Wire shapes of the API's accounts, secrets, cluster, targets and audit routes: shared by the
routes and ``kairos.client``, so they import nothing of FastAPI or the engine."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from kairos.identity import MAX_KEY_LIFETIME_S, Scope

__all__ = [
    "AuditOut",
    "AuditPage",
    "ClusterOut",
    "KeyIn",
    "KeyList",
    "KeyOut",
    "NewKeyOut",
    "NodeOut",
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
