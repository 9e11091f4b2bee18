"""Copying everything one store holds into another, over the ``Store`` interface only, so
that it works between any two backends (``kairos db copy``).

Records are read a page at a time with the stores' own listings and written with the
``RecordImport`` methods, one transaction per batch. Jobs, users, API keys and secrets are
copied as they are (a secret's ciphertext too: the same ``KAIROS_SECRETS_KEY`` reads it on the
other side). Runs and audit records get new ids on the destination, in the same order; a run
copied while ``running`` (its node gone or still at work) arrives ``interrupted``, since no node
of the destination holds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from kairos.identity import AuditRecord
from kairos.models import JobRecord, JobState, RunRecord, RunStatus
from kairos.store.base import JobQuery, Store

__all__ = [
    "INTERRUPTED_BY_COPY",
    "CopyOptions",
    "Counts",
    "Progress",
    "copy_store",
    "count_records",
    "held_records",
]

R = TypeVar("R", RunRecord, AuditRecord)
T = TypeVar("T")
Fetch = Callable[[int | None], Awaitable[list[R]]]
"""A page of records, newest first, before an id (None: from the newest)."""

INTERRUPTED_BY_COPY = "interrupted: copied to another database while running"

Progress = Callable[[str, int], None]
"""``progress(kind, copied_so_far)``, called after each batch."""


@dataclass(frozen=True, slots=True)
class CopyOptions:
    runs: bool = False
    """Copy the run history (and the queued runs) too."""
    audit: bool = False
    """Copy the audit log too."""
    batch: int = 500
    """Records per transaction."""
    meta_keys: Sequence[str] = ()
    """Metadata to carry over (a token signing key...), where the destination has none."""


@dataclass(frozen=True, slots=True)
class Counts:
    """How many records of each kind a store holds (runs and audit: None when not counted)."""

    jobs: dict[JobState, int]
    users: int
    api_keys: int
    secrets: int
    runs: int | None = None
    audit: int | None = None

    def rows(self) -> dict[str, int | None]:
        """Each kind's count by name (jobs in total and by state)."""
        by_state = {f"jobs {state.value}": self.jobs.get(state, 0) for state in JobState}
        return {
            "jobs": sum(self.jobs.values()),
            **by_state,
            "users": self.users,
            "api keys": self.api_keys,
            "secrets": self.secrets,
            "runs": self.runs,
            "audit records": self.audit,
        }


async def count_records(store: Store, options: CopyOptions) -> Counts:
    """What ``store`` holds of what ``copy_store`` copies with ``options`` (runs and audit
    records are counted by reading them: not for hot paths)."""
    runs = await _count(_runs_before(store, options.batch)) if options.runs else None
    audit = await _count(_audit_before(store, options.batch)) if options.audit else None
    return Counts(
        jobs={state: n for state, n in (await store.count_jobs()).items() if n},
        users=len(await store.list_users()),
        api_keys=len(await store.list_api_keys()),
        secrets=len(await store.list_secrets()),
        runs=runs,
        audit=audit,
    )


async def held_records(store: Store, options: CopyOptions) -> list[str]:
    """The kinds of record ``store`` already holds that a copy with ``options`` would write:
    a destination must hold none."""
    checks: list[tuple[str, Callable[[], Awaitable[Sequence[object]]]]] = [
        ("jobs", lambda: store.list_jobs(JobQuery(), 1)),
        ("users", store.list_users),
        ("API keys", store.list_api_keys),
        ("secrets", store.list_secrets),
    ]
    if options.runs:
        checks.append(("runs", lambda: _runs_before(store, 1)(None)))
    if options.audit:
        checks.append(("audit records", lambda: store.list_audit(limit=1)))
    return [kind for kind, listing in checks if await listing()]


async def copy_store(
    source: Store, destination: Store, options: CopyOptions, progress: Progress | None = None
) -> list[str]:
    """Copy what ``source`` holds into ``destination``, which should hold none of it (see
    ``held_records``): an import that meets a record already there raises ``Conflict``.
    Return the ``meta_keys`` whose value the destination had already, and kept."""

    def told(kind: str, done: int) -> None:
        if progress is not None:
            progress(kind, done)

    kept = await _copy_meta(source, destination, options.meta_keys)
    size = options.batch
    told("users", await _in_batches(await source.list_users(), destination.import_users, size))
    keys = await source.list_api_keys()
    told("API keys", await _in_batches(keys, destination.import_api_keys, size))
    secrets = await source.list_secrets()
    told("secrets", await _in_batches(secrets, destination.import_secrets, size))
    await _pages_into(_job_pages(source, size), destination.import_jobs, "jobs", told)
    if options.runs:
        runs = _oldest_first(_runs_before(source, size))
        await _pages_into(runs, destination.import_runs, "runs", told, _settled)
    if options.audit:
        records = _oldest_first(_audit_before(source, size))
        await _pages_into(records, destination.import_audit, "audit records", told)
    return kept


async def _pages_into(
    pages: AsyncIterator[list[T]],
    write: Callable[[Sequence[T]], Awaitable[None]],
    kind: str,
    told: Progress,
    settle: Callable[[T], T] | None = None,
) -> None:
    """Write each page as it comes, one transaction each, saying how many went so far."""
    done = 0
    async for page in pages:
        await write(page if settle is None else [settle(record) for record in page])
        done += len(page)
        told(kind, done)
    if not done:
        told(kind, 0)


async def _in_batches(
    records: Sequence[T], write: Callable[[Sequence[T]], Awaitable[None]], size: int
) -> int:
    for start in range(0, len(records), size):
        await write(records[start : start + size])
    return len(records)


async def _copy_meta(source: Store, destination: Store, keys: Sequence[str]) -> list[str]:
    kept = []
    for key in keys:
        value = await source.get_meta(key)
        if value is not None and await destination.set_meta_if_absent(key, value) != value:
            kept.append(key)
    return kept


def _settled(run: RunRecord) -> RunRecord:
    """A run as the destination can keep it: one in flight is held by no node there."""
    if run.status is not RunStatus.RUNNING:
        return run
    return dataclasses.replace(
        run,
        status=RunStatus.INTERRUPTED,
        finished_us=run.started_us,
        error=INTERRUPTED_BY_COPY,
    )


async def _job_pages(store: Store, size: int) -> AsyncIterator[list[JobRecord]]:
    after: tuple[int | None, str] | None = None
    while page := await store.list_jobs(JobQuery(after=after), size):
        yield page
        after = (None, page[-1].id)


def _runs_before(store: Store, size: int) -> Fetch[RunRecord]:
    """A page of runs, newest first, before an id."""

    async def fetch(before: int | None) -> list[RunRecord]:
        return await store.list_runs(job_id=None, status=None, before_id=before, limit=size)

    return fetch


def _audit_before(store: Store, size: int) -> Fetch[AuditRecord]:
    """A page of audit records, newest first, before an id."""

    async def fetch(before: int | None) -> list[AuditRecord]:
        return await store.list_audit(before_id=before, limit=size)

    return fetch


async def _newest_first(fetch: Fetch[R]) -> AsyncIterator[list[R]]:
    before: int | None = None
    while page := await fetch(before):
        yield page
        before = page[-1].id


async def _oldest_first(fetch: Fetch[R]) -> AsyncIterator[list[R]]:
    """The records as pages oldest first. Only where each page starts is held, not the
    records: each page is read again when its turn comes (the source is not being changed)."""
    starts: list[int | None] = [None]
    async for page in _newest_first(fetch):
        starts.append(page[-1].id)
    starts.pop()  # where a page would start after the oldest record: no page
    for before in reversed(starts):
        yield list(reversed(await fetch(before)))


async def _count(fetch: Fetch[R]) -> int:
    return sum([len(page) async for page in _newest_first(fetch)])
