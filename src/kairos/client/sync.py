"""``Client``: the Kairos HTTP API from synchronous Python."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from kairos.api.admin_schemas import (
    AuditOut,
    ClusterOut,
    JobRunCountsOut,
    KeyOut,
    NewKeyOut,
    OverviewOut,
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
from kairos.client import calls
from kairos.client.calls import Call, Document, JobPut, Page
from kairos.client.errors import Unreachable
from kairos.identity import Scope

__all__ = ["Client"]

T = TypeVar("T")


class Client:
    """The API of one Kairos server. ``url`` defaults to ``KAIROS_URL`` (else
    ``http://127.0.0.1:8000``), ``token`` to ``KAIROS_TOKEN``. Answers are the server's own
    models; a refusal raises an ``ApiError`` subclass, no answer ``Unreachable``. Calls that are
    safe to repeat (reads, ``PUT``, ``DELETE``, a dry-run apply) are sent up to ``retries``
    more times when the connection fails; the others never, since the server may have acted.
    ``transport`` replaces the network (an ``httpx.MockTransport``, an ASGI app's)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout_s: float = 30.0,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = calls.base_url(url)
        self.retries = retries
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=calls.headers(token),
            timeout=timeout_s,
            transport=transport,
        )

    def send(self, call: Call[T]) -> T:
        """Send ``call`` and read its answer (``kairos.client.calls`` builds them)."""
        retries = self.retries if call.safe_to_repeat else 0
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, params=call.params, json=call.json, data=call.form
                )
            except httpx.TransportError as exc:
                if attempt == retries:
                    raise Unreachable(self.base_url, exc) from exc
                time.sleep(calls.backoff_s(attempt))
                attempt += 1
            else:
                return calls.answer(call, response)

    def _items(self, page: Callable[[str | None], Call[Page[T]]]) -> Iterator[T]:
        cursor: str | None = None
        while True:
            answer = self.send(page(cursor))
            yield from answer.items
            cursor = answer.next_cursor
            if cursor is None:
                return

    # Jobs ----------------------------------------------------------------------------------------

    def put_job(self, job_id: str, job: Document) -> JobPut:
        """Create the job or completely replace it; what ``get_job`` answers is taken back."""
        return self.send(calls.put_job(job_id, job))

    def create_job(self, job: Document) -> JobOut:
        """Create a job (its ``id`` in ``job``); ``Conflict`` if the id is taken."""
        return self.send(calls.create_job(job))

    def get_job(self, job_id: str) -> JobOut:
        return self.send(calls.get_job(job_id))

    def list_jobs(
        self,
        *,
        prefix: str | None = None,
        state: str | None = None,
        tag: str | None = None,
        sort: str | None = None,
        page_size: int = 100,
    ) -> Iterator[JobOut]:
        """Every job (by id, or ``sort="next_run"``), fetched a page at a time as iterated."""
        filters: dict[str, Any] = {"prefix": prefix, "state": state, "tag": tag, "sort": sort}
        return self._items(lambda cursor: calls.job_page(cursor, page_size, **filters))

    def job_page(
        self,
        cursor: str | None = None,
        limit: int = 100,
        *,
        prefix: str | None = None,
        state: str | None = None,
        tag: str | None = None,
        sort: str | None = None,
    ) -> JobPage:
        """One page of jobs (filters as ``list_jobs``); pass its ``next_cursor`` back."""
        return self.send(
            calls.job_page(cursor, limit, prefix=prefix, state=state, tag=tag, sort=sort)
        )

    def patch_job(self, job_id: str, changes: Mapping[str, Any]) -> JobOut:
        """Replace the given top-level fields as wholes."""
        return self.send(calls.patch_job(job_id, changes))

    def delete_job(self, job_id: str, *, purge_runs: bool = False) -> None:
        self.send(calls.delete_job(job_id, purge_runs=purge_runs))

    def pause_job(self, job_id: str) -> JobOut:
        return self.send(calls.pause_job(job_id))

    def resume_job(self, job_id: str) -> JobOut:
        return self.send(calls.resume_job(job_id))

    def run_job(self, job_id: str) -> RunOut:
        """Start one run now, outside the schedule."""
        return self.send(calls.run_job(job_id))

    def put_jobs(self, jobs: Iterable[Document]) -> JobBatchOut:
        """Create or replace up to 10,000 jobs (each with its ``id``) in one transaction."""
        return self.send(calls.put_jobs(jobs))

    def apply_jobs(
        self,
        jobs: Iterable[Document],
        *,
        dry_run: bool = False,
        prune: bool = False,
        selector: str | None = None,
    ) -> JobApplyOut:
        """Make the server's jobs what ``jobs`` say, all or nothing; with ``prune``, delete the
        jobs ``selector`` (``tag=T``) picks that no document names. ``dry_run``: only say."""
        return self.send(calls.apply_jobs(jobs, dry_run=dry_run, prune=prune, selector=selector))

    def preview(
        self, trigger: Mapping[str, Any], *, timezone: str = "UTC", count: int = 10
    ) -> PreviewOut:
        """A trigger's next fire times, and the trigger in words."""
        return self.send(calls.preview(trigger, timezone, count))

    # Runs ----------------------------------------------------------------------------------------

    def get_run(self, run_id: int) -> RunOut:
        return self.send(calls.get_run(run_id))

    def cancel_run(self, run_id: int) -> RunOut:
        """Stop a queued or running run (``ApiError`` 409 for one that has ended)."""
        return self.send(calls.cancel_run(run_id))

    def list_runs(
        self, *, job_id: str | None = None, status: str | None = None, page_size: int = 50
    ) -> Iterator[RunOut]:
        """Runs, newest first (only ``job_id``'s: ``NotFound`` if there is no such job)."""
        return self._items(
            lambda cursor: calls.run_page(cursor, page_size, job_id=job_id, status=status)
        )

    def run_page(
        self,
        cursor: str | None = None,
        limit: int = 50,
        *,
        job_id: str | None = None,
        status: str | None = None,
    ) -> RunPage:
        """One page of runs (filters as ``list_runs``); pass its ``next_cursor`` back."""
        return self.send(calls.run_page(cursor, limit, job_id=job_id, status=status))

    # Operations and audit ------------------------------------------------------------------------

    def cluster(self) -> ClusterOut:
        return self.send(calls.cluster())

    def overview(self, limit: int = 10) -> OverviewOut:
        """The installation at a glance (``GET /overview``), with the first ``limit`` failing
        and tripped jobs and next fires."""
        return self.send(calls.overview(limit))

    def job_run_counts(self, job_ids: Sequence[str]) -> list[JobRunCountsOut]:
        """Each job's ended runs by status over its kept history, success rate and last call
        (``GET /overview/jobs``, up to 200 jobs)."""
        return (self.send(calls.job_run_counts(job_ids))).items

    def targets(self) -> TargetsOut:
        return self.send(calls.targets())

    def list_audit(
        self, *, target: str | None = None, actor: str | None = None, page_size: int = 100
    ) -> Iterator[AuditOut]:
        """Every change, newest first."""
        return self._items(
            lambda cursor: calls.audit_page(cursor, page_size, target=target, actor=actor)
        )

    def healthy(self) -> bool:
        """True when the server answers (``Unreachable`` otherwise)."""
        return self.send(calls.healthy())

    def ready(self) -> bool:
        """True when the server can use its database."""
        return self.send(calls.ready())

    # Auth and secrets ----------------------------------------------------------------------------

    def sign_in(self, username: str, password: str, scopes: Iterable[Scope | str] = ()) -> TokenOut:
        """An access token for a user (all of the user's scopes, or those named)."""
        return self.send(calls.sign_in(username, password, scopes))

    def me(self) -> WhoAmI:
        return self.send(calls.me())

    def create_key(
        self, name: str, scopes: Iterable[Scope | str], *, expires_in_s: float | None = None
    ) -> NewKeyOut:
        """A new API key; its text (``key``) is in this answer only."""
        return self.send(calls.create_key(name, scopes, expires_in_s))

    def list_keys(self) -> list[KeyOut]:
        return self.send(calls.list_keys())

    def revoke_key(self, key_id: str) -> None:
        self.send(calls.revoke_key(key_id))

    def set_secret(self, name: str, value: str) -> SecretSet:
        return self.send(calls.set_secret(name, value))

    def list_secrets(self) -> list[SecretOut]:
        return self.send(calls.list_secrets())

    def delete_secret(self, name: str) -> None:
        self.send(calls.delete_secret(name))

    # Lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
