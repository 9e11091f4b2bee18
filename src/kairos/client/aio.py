"""``AsyncClient``: the Kairos HTTP API from asyncio, method for method as ``Client``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
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

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """``Client``'s methods, awaited; its iterators are asynchronous. The same defaults,
    errors and retries."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout_s: float = 30.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = calls.base_url(url)
        self.retries = retries
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=calls.headers(token),
            timeout=timeout_s,
            transport=transport,
        )

    async def send(self, call: Call[T]) -> T:
        """Send ``call`` and read its answer (``kairos.client.calls`` builds them)."""
        retries = self.retries if call.safe_to_repeat else 0
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, json=call.json, data=call.form
                )
            except httpx.TransportError as exc:
                if attempt == retries:
                    raise Unreachable(self.base_url, exc) from exc
                await asyncio.sleep(calls.backoff_s(attempt))
                attempt += 1
            else:
                return calls.answer(call, response)

    async def _items(self, page: Callable[[str | None], Call[Page[T]]]) -> AsyncIterator[T]:
        cursor: str | None = None
        while True:
            answer = await self.send(page(cursor))
            for item in answer.items:
                yield item
            cursor = answer.next_cursor
            if cursor is None:
                return

    # Jobs ----------------------------------------------------------------------------------------

    async def put_job(self, job_id: str, job: Document) -> JobPut:
        """Create the job or completely replace it; what ``get_job`` answers is taken back."""
        return await self.send(calls.put_job(job_id, job))

    async def create_job(self, job: Document) -> JobOut:
        """Create a job (its ``id`` in ``job``); ``Conflict`` if the id is taken."""
        return await self.send(calls.create_job(job))

    async def get_job(self, job_id: str) -> JobOut:
        return await self.send(calls.get_job(job_id))

    def list_jobs(
        self,
        *,
        prefix: str | None = None,
        state: str | None = None,
        tag: str | None = None,
        sort: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[JobOut]:
        """Every job (by id, or ``sort="next_run"``), fetched a page at a time as iterated."""
        filters: dict[str, Any] = {"prefix": prefix, "state": state, "tag": tag, "sort": sort}
        return self._items(lambda cursor: calls.job_page(cursor, page_size, **filters))

    async def job_page(
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
        return await self.send(
            calls.job_page(cursor, limit, prefix=prefix, state=state, tag=tag, sort=sort)
        )

    async def patch_job(self, job_id: str, changes: Mapping[str, Any]) -> JobOut:
        """Replace the given top-level fields as wholes."""
        return await self.send(calls.patch_job(job_id, changes))

    async def delete_job(self, job_id: str, *, purge_runs: bool = False) -> None:
        await self.send(calls.delete_job(job_id, purge_runs=purge_runs))

    async def pause_job(self, job_id: str) -> JobOut:
        return await self.send(calls.pause_job(job_id))

    async def resume_job(self, job_id: str) -> JobOut:
        return await self.send(calls.resume_job(job_id))

    async def run_job(self, job_id: str) -> RunOut:
        """Start one run now, outside the schedule."""
        return await self.send(calls.run_job(job_id))

    async def put_jobs(self, jobs: Iterable[Document]) -> JobBatchOut:
        """Create or replace up to 10,000 jobs (each with its ``id``) in one transaction."""
        return await self.send(calls.put_jobs(jobs))

    async def apply_jobs(
        self,
        jobs: Iterable[Document],
        *,
        dry_run: bool = False,
        prune: bool = False,
        selector: str | None = None,
    ) -> JobApplyOut:
        """Make the server's jobs what ``jobs`` say, all or nothing; with ``prune``, delete the
        jobs ``selector`` (``tag=T``) picks that no document names. ``dry_run``: only say."""
        return await self.send(
            calls.apply_jobs(jobs, dry_run=dry_run, prune=prune, selector=selector)
        )

    async def preview(
        self, trigger: Mapping[str, Any], *, timezone: str = "UTC", count: int = 10
    ) -> PreviewOut:
        """A trigger's next fire times, and the trigger in words."""
        return await self.send(calls.preview(trigger, timezone, count))

    # Runs ----------------------------------------------------------------------------------------

    async def get_run(self, run_id: int) -> RunOut:
        return await self.send(calls.get_run(run_id))

    async def cancel_run(self, run_id: int) -> RunOut:
        """Stop a queued or running run (``ApiError`` 409 for one that has ended)."""
        return await self.send(calls.cancel_run(run_id))

    def list_runs(
        self, *, job_id: str | None = None, status: str | None = None, page_size: int = 50
    ) -> AsyncIterator[RunOut]:
        """Runs, newest first (only ``job_id``'s: ``NotFound`` if there is no such job)."""
        return self._items(
            lambda cursor: calls.run_page(cursor, page_size, job_id=job_id, status=status)
        )

    async def run_page(
        self,
        cursor: str | None = None,
        limit: int = 50,
        *,
        job_id: str | None = None,
        status: str | None = None,
    ) -> RunPage:
        """One page of runs (filters as ``list_runs``); pass its ``next_cursor`` back."""
        return await self.send(calls.run_page(cursor, limit, job_id=job_id, status=status))

    # Operations and audit ------------------------------------------------------------------------

    async def cluster(self) -> ClusterOut:
        return await self.send(calls.cluster())

    async def overview(self, limit: int = 10) -> OverviewOut:
        """The installation at a glance (``GET /overview``), with the first ``limit`` failing
        and tripped jobs and next fires."""
        return await self.send(calls.overview(limit))

    async def job_run_counts(self, job_ids: Sequence[str]) -> list[JobRunCountsOut]:
        """Each job's ended runs by status over its kept history, success rate and last call
        (``GET /overview/jobs``, up to 200 jobs)."""
        return (await self.send(calls.job_run_counts(job_ids))).items

    async def targets(self) -> TargetsOut:
        return await self.send(calls.targets())

    def list_audit(
        self, *, target: str | None = None, actor: str | None = None, page_size: int = 100
    ) -> AsyncIterator[AuditOut]:
        """Every change, newest first."""
        return self._items(
            lambda cursor: calls.audit_page(cursor, page_size, target=target, actor=actor)
        )

    async def healthy(self) -> bool:
        """True when the server answers (``Unreachable`` otherwise)."""
        return await self.send(calls.healthy())

    async def ready(self) -> bool:
        """True when the server can use its database."""
        return await self.send(calls.ready())

    # Auth and secrets ----------------------------------------------------------------------------

    async def sign_in(
        self, username: str, password: str, scopes: Iterable[Scope | str] = ()
    ) -> TokenOut:
        """An access token for a user (all of the user's scopes, or those named)."""
        return await self.send(calls.sign_in(username, password, scopes))

    async def me(self) -> WhoAmI:
        return await self.send(calls.me())

    async def create_key(
        self, name: str, scopes: Iterable[Scope | str], *, expires_in_s: float | None = None
    ) -> NewKeyOut:
        """A new API key; its text (``key``) is in this answer only."""
        return await self.send(calls.create_key(name, scopes, expires_in_s))

    async def list_keys(self) -> list[KeyOut]:
        return await self.send(calls.list_keys())

    async def revoke_key(self, key_id: str) -> None:
        await self.send(calls.revoke_key(key_id))

    async def set_secret(self, name: str, value: str) -> SecretSet:
        return await self.send(calls.set_secret(name, value))

    async def list_secrets(self) -> list[SecretOut]:
        return await self.send(calls.list_secrets())

    async def delete_secret(self, name: str) -> None:
        await self.send(calls.delete_secret(name))

    # Lifetime ------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
