"""Every API operation as a ``Call``: what to send and how to read the answer. ``Client`` and
``AsyncClient`` only send them, so the two cannot drift apart."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from kairos.api.admin_schemas import (
    AuditPage,
    ClusterOut,
    JobRunCountsList,
    KeyList,
    KeyOut,
    NewKeyOut,
    OverviewOut,
    SecretList,
    SecretOut,
    SecretSet,
    TargetsOut,
    TokenOut,
    WhoAmI,
)
from kairos.api.schemas import (
    JobApplyOut,
    JobBatchOut,
    JobOut,
    JobPage,
    PreviewOut,
    RunOut,
    RunPage,
)
from kairos.client.errors import error_for
from kairos.identity import Scope

__all__ = [
    "DEFAULT_URL",
    "Call",
    "Document",
    "JobPut",
    "Page",
    "answer",
    "apply_jobs",
    "audit_page",
    "backoff_s",
    "base_url",
    "cancel_run",
    "cluster",
    "create_job",
    "create_key",
    "delete_job",
    "delete_secret",
    "get_job",
    "get_run",
    "headers",
    "healthy",
    "job_page",
    "job_run_counts",
    "list_keys",
    "list_secrets",
    "me",
    "overview",
    "patch_job",
    "pause_job",
    "preview",
    "put_job",
    "put_jobs",
    "ready",
    "resume_job",
    "revoke_key",
    "run_job",
    "run_page",
    "set_secret",
    "sign_in",
    "targets",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Item = TypeVar("Item", covariant=True)
M = TypeVar("M", bound=BaseModel)

Document = BaseModel | Mapping[str, Any]
"""A job as the API takes it: a model (``JobOut`` as read, ``JobDocument``, ``JobSpec``) or
the JSON object itself."""


class JobPut(NamedTuple):
    """What ``put_job`` did: the job as stored, and whether it was new."""

    job: JobOut
    created: bool


class Page(Protocol[Item]):
    @property
    def items(self) -> Sequence[Item]: ...

    @property
    def next_cursor(self) -> str | None: ...


@dataclass(frozen=True)
class Call(Generic[T_co]):
    """One request and the reading of its answer. ``safe_to_repeat``: sending it twice does
    what sending it once does, so a call that got no answer may be sent again."""

    method: str
    path: str
    read: Callable[[httpx.Response], T_co]
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    form: Mapping[str, str] | None = None
    safe_to_repeat: bool = False
    answers: frozenset[int] = frozenset()
    """Statuses of 400 or more that are answers to read, not errors."""


DEFAULT_URL = "http://127.0.0.1:8000"


def base_url(url: str | None) -> str:
    """``url``, else ``KAIROS_URL``, else the address ``kairos serve`` binds by default."""
    return (url or os.environ.get("KAIROS_URL") or DEFAULT_URL).rstrip("/")


def headers(token: str | None) -> dict[str, str]:
    """The bearer token ``token``, else ``KAIROS_TOKEN``; none without either."""
    chosen = token if token is not None else os.environ.get("KAIROS_TOKEN")
    return {"Authorization": f"Bearer {chosen}"} if chosen else {}


def answer(call: Call[T], response: httpx.Response) -> T:
    """What ``call`` answers; an ``ApiError`` for a status it does not read."""
    if response.status_code >= 400 and response.status_code not in call.answers:
        raise error_for(response)
    return call.read(response)


def backoff_s(attempt: int) -> float:
    """The wait before sending again after ``attempt`` (0: the first) got no answer."""
    return min(0.1 * 2.0**attempt, 2.0)


def _call(method: str, path: str, read: Callable[[httpx.Response], T], **options: Any) -> Call[T]:
    options.setdefault("safe_to_repeat", method in ("GET", "PUT", "DELETE"))
    return Call(method, path, read, **options)


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def _nothing(_response: httpx.Response) -> None:
    return None


def _segment(text: str | int) -> str:
    return quote(str(text), safe=":")


def _document(job: Document) -> Any:
    if isinstance(job, BaseModel):
        return job.model_dump(mode="json", exclude_unset=True)
    return dict(job)


def _given(**params: Any) -> dict[str, Any]:
    return {name: value for name, value in params.items() if value is not None}


# Jobs --------------------------------------------------------------------------------------------


def put_job(job_id: str, job: Document) -> Call[JobPut]:
    def read(response: httpx.Response) -> JobPut:
        return JobPut(JobOut.model_validate_json(response.content), response.status_code == 201)

    return _call("PUT", f"/jobs/{_segment(job_id)}", read, json=_document(job))


def create_job(job: Document) -> Call[JobOut]:
    return _call("POST", "/jobs", _model(JobOut), json=_document(job))


def get_job(job_id: str) -> Call[JobOut]:
    return _call("GET", f"/jobs/{_segment(job_id)}", _model(JobOut))


def job_page(
    cursor: str | None,
    limit: int,
    *,
    prefix: str | None = None,
    state: str | None = None,
    tag: str | None = None,
    sort: str | None = None,
) -> Call[JobPage]:
    params = _given(cursor=cursor, limit=limit, q=prefix, state=state, tag=tag, sort=sort)
    return _call("GET", "/jobs", _model(JobPage), params=params)


def patch_job(job_id: str, changes: Mapping[str, Any]) -> Call[JobOut]:
    return _call("PATCH", f"/jobs/{_segment(job_id)}", _model(JobOut), json=dict(changes))


def delete_job(job_id: str, *, purge_runs: bool = False) -> Call[None]:
    params = {"purge_runs": "true"} if purge_runs else {}
    return _call("DELETE", f"/jobs/{_segment(job_id)}", _nothing, params=params)


def pause_job(job_id: str) -> Call[JobOut]:
    return _call("POST", f"/jobs/{_segment(job_id)}/pause", _model(JobOut))


def resume_job(job_id: str) -> Call[JobOut]:
    return _call("POST", f"/jobs/{_segment(job_id)}/resume", _model(JobOut))


def run_job(job_id: str) -> Call[RunOut]:
    return _call("POST", f"/jobs/{_segment(job_id)}/run", _model(RunOut))


def put_jobs(jobs: Iterable[Document]) -> Call[JobBatchOut]:
    body = {"jobs": [_document(job) for job in jobs]}
    return _call("POST", "/jobs:batch", _model(JobBatchOut), json=body)


def apply_jobs(
    jobs: Iterable[Document], *, dry_run: bool, prune: bool, selector: str | None
) -> Call[JobApplyOut]:
    body = {
        "jobs": [_document(job) for job in jobs],
        "dry_run": dry_run,
        "prune": prune,
        "selector": selector,
    }
    # A dry run writes nothing; a real one answers what it changed, which a second sending
    # would misreport as unchanged.
    return _call("POST", "/jobs:apply", _model(JobApplyOut), json=body, safe_to_repeat=dry_run)


def preview(trigger: Mapping[str, Any], timezone: str, count: int) -> Call[PreviewOut]:
    body = {"trigger": dict(trigger), "timezone": timezone, "count": count}
    return _call("POST", "/triggers/preview", _model(PreviewOut), json=body, safe_to_repeat=True)


# Runs --------------------------------------------------------------------------------------------


def get_run(run_id: int) -> Call[RunOut]:
    return _call("GET", f"/runs/{_segment(run_id)}", _model(RunOut))


def cancel_run(run_id: int) -> Call[RunOut]:
    # Repeating it after a lost answer would be a 409 for a run it had cancelled: not retried.
    return _call("POST", f"/runs/{_segment(run_id)}/cancel", _model(RunOut))


def run_page(
    cursor: str | None, limit: int, *, job_id: str | None = None, status: str | None = None
) -> Call[RunPage]:
    """A job's runs come from ``/jobs/{id}/runs``, so that an unknown job is a 404."""
    path = "/runs" if job_id is None else f"/jobs/{_segment(job_id)}/runs"
    return _call(
        "GET", path, _model(RunPage), params=_given(cursor=cursor, limit=limit, status=status)
    )


# Operations and audit ----------------------------------------------------------------------------


def cluster() -> Call[ClusterOut]:
    return _call("GET", "/cluster", _model(ClusterOut))


def overview(limit: int) -> Call[OverviewOut]:
    return _call("GET", "/overview", _model(OverviewOut), params={"limit": limit})


def job_run_counts(job_ids: Sequence[str]) -> Call[JobRunCountsList]:
    return _call(
        "GET", "/overview/jobs", _model(JobRunCountsList), params={"job_id": list(job_ids)}
    )


def targets() -> Call[TargetsOut]:
    return _call("GET", "/targets", _model(TargetsOut))


def audit_page(
    cursor: str | None, limit: int, *, target: str | None = None, actor: str | None = None
) -> Call[AuditPage]:
    params = _given(cursor=cursor, limit=limit, target=target, actor=actor)
    return _call("GET", "/audit", _model(AuditPage), params=params)


def healthy() -> Call[bool]:
    return _call("GET", "/healthz", lambda response: True)


def ready() -> Call[bool]:
    """True when the server reaches its database; its 503 is an answer here, not an error."""
    return _call(
        "GET", "/readyz", lambda response: response.status_code == 200, answers=frozenset({503})
    )


# Auth and secrets --------------------------------------------------------------------------------


def sign_in(username: str, password: str, scopes: Iterable[Scope | str]) -> Call[TokenOut]:
    form = {"username": username, "password": password, "scope": " ".join(scopes)}
    return _call("POST", "/auth/token", _model(TokenOut), form=form)


def me() -> Call[WhoAmI]:
    return _call("GET", "/auth/me", _model(WhoAmI))


def create_key(
    name: str, scopes: Iterable[Scope | str], expires_in_s: float | None
) -> Call[NewKeyOut]:
    body = {"name": name, "scopes": list(scopes), "expires_in": expires_in_s}
    return _call("POST", "/auth/keys", _model(NewKeyOut), json=body)


def list_keys() -> Call[list[KeyOut]]:
    return _call("GET", "/auth/keys", lambda r: KeyList.model_validate_json(r.content).items)


def revoke_key(key_id: str) -> Call[None]:
    return _call("DELETE", f"/auth/keys/{_segment(key_id)}", _nothing)


def set_secret(name: str, value: str) -> Call[SecretSet]:
    return _call("PUT", f"/secrets/{_segment(name)}", _model(SecretSet), json={"value": value})


def list_secrets() -> Call[list[SecretOut]]:
    return _call("GET", "/secrets", lambda r: SecretList.model_validate_json(r.content).items)


def delete_secret(name: str) -> Call[None]:
    return _call("DELETE", f"/secrets/{_segment(name)}", _nothing)
