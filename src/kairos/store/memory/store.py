"""``MemoryStore``: the whole store in the memory of one process, for tests and throw-away scripts.

Each operation runs whole under one lock without yielding to the event loop, inside a
transaction of ``Tables`` that undoes it if it raises: the atomicity the SQL stores get from
their database. The operations themselves are functions of the tables, one module per concern,
as in ``store/sql``: ``jobs``, ``ledger``, ``breaker``, ``retention``, ``accounts``.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import TypeVar

from kairos.clock import Clock, SystemClock
from kairos.errors import JobNotFound, RunNotFound
from kairos.identity import Actor, ApiKeyRecord, AuditRecord, Scope, UserRecord
from kairos.models import JobRecord, JobState, RunRecord, RunStatus
from kairos.store.base import JobQuery, NodeInfo, SecretRecord, Store
from kairos.store.claims import Claim, ClaimPolicy, FinishedRun
from kairos.store.memory import accounts, imports, jobs, ledger, retention
from kairos.store.memory.process import ProcessBinding
from kairos.store.memory.tables import NodeRow, Tables
from kairos.store.summaries import JobRunCounts, RunSummary

__all__ = ["MemoryStore"]

T = TypeVar("T")


class MemoryStore(Store):
    """Everything in this process's memory, gone when it ends. One process only: a forked copy
    of the process, or a worker of a server that runs several, is refused (``ProcessBinding``).
    Safe to share between tasks and threads of its process."""

    single_process = True
    purge_window_runs = 10_000
    """How many runs one ``purge_expired_runs`` reads through at most."""

    def __init__(self, clock: Clock | None = None) -> None:
        """``clock``: the store's own clock, as the SQL stores read their database's, for
        heartbeats, leases and interrupted runs (the engine's claims bring their own time)."""
        self._clock = clock or SystemClock()
        self._tables = Tables()
        self._lock = threading.Lock()
        self._binding = ProcessBinding()
        self._purge_next_id = 0

    @contextmanager
    def _reading(self) -> Iterator[Tables]:
        self._binding.check()
        with self._lock:
            yield self._tables

    def _write(self, change: Callable[[Tables], T]) -> T:
        """Make ``change`` as one transaction."""
        self._binding.check()
        with self._lock, self._tables.transaction():
            return change(self._tables)

    # Lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        self._binding.open()

    async def close(self) -> None:
        return None

    async def check_writable(self) -> None:
        self._binding.check()

    async def get_meta(self, key: str) -> str | None:
        with self._reading() as t:
            return t.meta.get(key)

    async def set_meta_if_absent(self, key: str, value: str) -> str:
        def change(t: Tables) -> str:
            if key not in t.meta:
                t.put(t.meta, key, value)
            return t.meta[key]

        return self._write(change)

    # Jobs --------------------------------------------------------------------------------------

    async def insert_job(self, job: JobRecord, *, by: Actor | None = None) -> None:
        self._write(lambda t: jobs.insert_job(t, job, by))

    async def upsert_jobs(
        self, batch: Sequence[JobRecord], *, by: Actor | None = None
    ) -> dict[str, int]:
        return self._write(lambda t: jobs.upsert_jobs(t, batch, by))

    async def apply_jobs(
        self,
        upserts: Sequence[JobRecord],
        deletes: Sequence[str],
        *,
        by: Actor,
        summary: dict[str, object],
    ) -> None:
        self._write(lambda t: jobs.apply_jobs(t, upserts, deletes, by, summary))

    async def update_job(
        self,
        job: JobRecord,
        *,
        expected_updated_us: int,
        by: Actor | None = None,
        action: str = "job.update",
    ) -> None:
        self._write(lambda t: jobs.update_job(t, job, expected_updated_us, by, action))

    async def get_job(self, job_id: str) -> JobRecord:
        with self._reading() as t:
            job = t.jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def list_jobs(self, query: JobQuery, limit: int) -> list[JobRecord]:
        with self._reading() as t:
            return jobs.list_jobs(t, query, limit)

    async def count_jobs(self) -> dict[JobState, int]:
        with self._reading() as t:
            return jobs.count_jobs(t)

    async def count_jobs_by_task(self) -> dict[str, int]:
        with self._reading() as t:
            return jobs.count_jobs_by_task(t)

    async def delete_job(
        self, job_id: str, *, purge_runs: bool = False, by: Actor | None = None
    ) -> None:
        self._write(lambda t: jobs.delete_job(t, job_id, purge_runs, by))

    # Runs --------------------------------------------------------------------------------------

    async def add_manual_run(
        self, job_id: str, scheduled_for_us: int, *, by: Actor | None = None
    ) -> RunRecord:
        return self._write(lambda t: ledger.add_manual_run(t, job_id, scheduled_for_us, by))

    async def claim_due(
        self,
        now_us: int,
        limit: int,
        node_id: str,
        policy: ClaimPolicy,
        *,
        ahead_us: int = 0,
        finished: Sequence[FinishedRun] = (),
    ) -> Claim:
        return self._write(
            lambda t: ledger.claim(t, now_us, ahead_us, limit, node_id, policy, finished)
        )

    async def finish_runs(self, node_id: str, finished: Sequence[FinishedRun]) -> dict[int, str]:
        return self._write(lambda t: ledger.finish(t, node_id, finished)) if finished else {}

    async def interrupt_running(
        self, node_id: str | None, *, retries: int, policy: ClaimPolicy
    ) -> int:
        def change(t: Tables) -> int:
            if node_id is None:
                held = [run_id for ids in t.running_by_node.values() for run_id in ids]
            else:
                held = list(t.running_by_node.get(node_id, ()))
            return ledger.interrupt(t, held, self._clock.now_us(), retries, policy)

        return self._write(change)

    async def cancel_run(self, run_id: int, *, by: Actor) -> RunRecord:
        return self._write(lambda t: ledger.cancel_run(t, run_id, by))

    async def cancelled_among(self, run_ids: Sequence[int]) -> set[int]:
        with self._reading() as t:
            found = (t.runs.get(run_id) for run_id in run_ids)
            return {run.id for run in found if run and run.status is RunStatus.CANCELLED}

    async def get_run(self, run_id: int) -> RunRecord:
        with self._reading() as t:
            run = t.runs.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    async def list_runs(
        self,
        *,
        job_id: str | None,
        status: RunStatus | None,
        before_id: int | None,
        limit: int,
    ) -> list[RunRecord]:
        with self._reading() as t:
            if job_id is None:
                ids: Iterator[int] = t.run_ids.descending(before_id)
            else:
                of_job = t.job_runs.get(job_id, [])
                end = len(of_job) if before_id is None else bisect_left(of_job, before_id)
                ids = (of_job[i] for i in range(end - 1, -1, -1))
            chosen = (t.runs[run_id] for run_id in ids)
            if status is not None:
                chosen = (run for run in chosen if run.status is status)
            return list(islice(chosen, max(limit, 0)))

    # Retention ---------------------------------------------------------------------------------

    async def purge_runs(self, jobs: Sequence[tuple[str, int, int | None]]) -> int:
        return self._write(lambda t: retention.purge_runs(t, jobs)) if jobs else 0

    async def purge_expired_runs(self, older_than_us: int, limit: int) -> int:
        # One stretch of runs a call, from the oldest to the newest and round again: each call
        # reads a bounded number of runs, however many there are.
        first = self._purge_next_id
        deleted, resume = self._write(
            lambda t: retention.purge_aged_runs(
                t,
                first_id=first,
                window=self.purge_window_runs,
                older_than_us=older_than_us,
                limit=limit,
            )
        )
        if deleted < limit:
            self._purge_next_id = resume
        return deleted

    # Summaries ---------------------------------------------------------------------------------

    async def run_summary(self, since_us: Sequence[int], limit: int) -> RunSummary:
        with self._reading() as t:
            summaries = t.summaries
            failing, failing_jobs = summaries.failing_jobs(t.jobs.__contains__, limit)
            return RunSummary(
                ended=[summaries.ended_since(at_us) for at_us in since_us],
                running=sum(len(held) for held in t.running_by_node.values()),
                queued=len(t.queued),
                failing=failing,
                failing_jobs=failing_jobs,
                tripped=len(summaries.tripped),
                tripped_jobs=list(islice(summaries.tripped.ascending(), max(limit, 0))),
            )

    async def job_run_counts(self, job_ids: Sequence[str]) -> dict[str, JobRunCounts]:
        with self._reading() as t:
            return t.summaries.counts_of(job_ids)

    async def purge_run_counts(self, older_than_us: int) -> None:
        self._write(lambda t: t.purge_run_counts(older_than_us))

    # Nodes -------------------------------------------------------------------------------------

    async def heartbeat(
        self, node_id: str, hostname: str, tasks: frozenset[str] = frozenset()
    ) -> None:
        def change(t: Tables) -> None:
            now_us = self._clock.now_us()
            known = t.nodes.get(node_id)
            if known is None:
                t.put(t.nodes, node_id, NodeRow(hostname, now_us, now_us, tasks))
            else:
                beat = NodeRow(known.hostname, known.started_us, now_us, tasks)
                t.put(t.nodes, node_id, beat)

        self._write(change)

    async def deregister_node(self, node_id: str) -> None:
        self._write(lambda t: t.drop(t.nodes, node_id))

    async def take_over(self, lease_us: int, *, retries: int, policy: ClaimPolicy) -> list[str]:
        def change(t: Tables) -> list[str]:
            now_us = self._clock.now_us()
            dead = [id_ for id_, row in t.nodes.items() if row.heartbeat_us < now_us - lease_us]
            for node_id in dead:
                t.drop(t.nodes, node_id)
            # Runs of nodes with no row at all (forgotten) are orphans: take them too.
            orphans = [ids for node, ids in t.running_by_node.items() if node not in t.nodes]
            orphaned = [run_id for ids in orphans for run_id in ids]
            ledger.interrupt(t, orphaned, now_us, retries, policy)
            return dead

        return self._write(change)

    async def list_nodes(self) -> list[NodeInfo]:
        with self._reading() as t:
            now_us = self._clock.now_us()
            return [
                NodeInfo(
                    node_id,
                    row.hostname,
                    row.started_us,
                    now_us - row.heartbeat_us,
                    len(t.running_by_node.get(node_id, ())),
                    row.tasks,
                )
                for node_id, row in sorted(t.nodes.items())
            ]

    # Users and API keys ------------------------------------------------------------------------

    async def add_user(
        self, name: str, password_hash: str, scopes: frozenset[Scope], *, by: Actor
    ) -> UserRecord:
        return self._write(lambda t: accounts.add_user(t, name, password_hash, scopes, by))

    async def update_user(
        self,
        name: str,
        *,
        password_hash: str | None = None,
        scopes: frozenset[Scope] | None = None,
        by: Actor,
        action: str,
    ) -> UserRecord:
        return self._write(
            lambda t: accounts.update_user(t, name, password_hash, scopes, by, action)
        )

    async def get_user(self, name: str) -> UserRecord | None:
        with self._reading() as t:
            return t.users.get(name)

    async def list_users(self) -> list[UserRecord]:
        with self._reading() as t:
            return [t.users[name] for name in sorted(t.users)]

    async def remove_user(self, name: str, *, by: Actor) -> None:
        self._write(lambda t: accounts.remove_user(t, name, by))

    async def add_api_key(self, key: ApiKeyRecord, *, by: Actor) -> None:
        self._write(lambda t: accounts.add_api_key(t, key, by))

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        with self._reading() as t:
            return t.api_keys.get(key_id)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        with self._reading() as t:
            return sorted(t.api_keys.values(), key=lambda key: (key.created_us, key.id))

    async def revoke_api_key(self, key_id: str, *, by: Actor) -> ApiKeyRecord:
        return self._write(lambda t: accounts.revoke_api_key(t, key_id, by))

    # Secrets -----------------------------------------------------------------------------------

    async def put_secret(self, name: str, ciphertext: str, *, by: Actor) -> bool:
        return self._write(lambda t: accounts.put_secret(t, name, ciphertext, by))

    async def get_secret(self, name: str) -> SecretRecord | None:
        with self._reading() as t:
            return t.secrets.get(name)

    async def list_secrets(self) -> list[SecretRecord]:
        with self._reading() as t:
            return [t.secrets[name] for name in sorted(t.secrets)]

    async def delete_secret(self, name: str, *, by: Actor) -> None:
        self._write(lambda t: accounts.delete_secret(t, name, by))

    # The audit log -----------------------------------------------------------------------------

    async def list_audit(
        self,
        *,
        target: str | None = None,
        actor: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        with self._reading() as t:
            return accounts.list_audit(t, target, actor, before_id, limit)

    async def purge_audit(self, older_than_us: int, limit: int) -> int:
        return self._write(lambda t: accounts.purge_audit(t, older_than_us, limit))

    # Imports -----------------------------------------------------------------------------------

    async def import_jobs(self, batch: Sequence[JobRecord]) -> None:
        self._write(lambda t: imports.import_jobs(t, batch))

    async def import_runs(self, runs: Sequence[RunRecord]) -> None:
        self._write(lambda t: imports.import_runs(t, runs))

    async def import_users(self, users: Sequence[UserRecord]) -> None:
        self._write(lambda t: imports.import_users(t, users))

    async def import_api_keys(self, keys: Sequence[ApiKeyRecord]) -> None:
        self._write(lambda t: imports.import_api_keys(t, keys))

    async def import_secrets(self, secrets: Sequence[SecretRecord]) -> None:
        self._write(lambda t: imports.import_secrets(t, secrets))

    async def import_audit(self, records: Sequence[AuditRecord]) -> None:
        self._write(lambda t: imports.import_audit(t, records))
