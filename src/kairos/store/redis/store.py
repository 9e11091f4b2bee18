"""``RedisStore``: the store for a cluster of Kairos processes sharing one Redis.

Each change is one optimistic transaction (``tx.Tx``): its reads are ``WATCH``ed and its writes
sent in one ``MULTI``/``EXEC``, which Redis refuses if a key read changed meanwhile; the change
is then made again from fresh reads. The claim, the one change every replica makes at once, is
two Lua scripts instead (``claim.Claimer``): one reads what the claim plans from, the engine's
``ClaimPolicy`` plans in Python, and the other commits each job's part only if the job, its
runs in flight and its queued runs are as read, skipping the jobs another replica or the API
changed meanwhile. A fire becomes a run in the job's ledger inside that script, so exactly once,
and replicas claiming at once each keep what they won instead of starting over.

Changes are announced on a pub/sub channel by a ``PUBLISH`` in the same ``EXEC``. Heartbeats are
a sorted set by Redis's clock. An installation key written at first open tells a wiped store
(Redis restarted without persistence): from then on writes are refused, loudly, instead of
carrying on as if the jobs had never existed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError

from kairos.errors import JobNotFound, RunNotFound, StoreUnavailable
from kairos.identity import Actor, ApiKeyRecord, AuditRecord, Scope, UserRecord
from kairos.models import JobRecord, JobState, RunRecord, RunStatus
from kairos.store.base import ChangeFn, JobQuery, SecretRecord, Store
from kairos.store.claims import Claim, ClaimPolicy, FinishedRun
from kairos.store.redis import accounts, codec, imports, jobs, ledger, retention, stats, tx
from kairos.store.redis.claim import Claimer
from kairos.store.redis.connection import command, guarded, migrate, server_now_us, wiped_reason
from kairos.store.redis.keys import Keys
from kairos.store.redis.nodes import NodeBook
from kairos.store.summaries import JobRunCounts, RunSummary

__all__ = ["RedisStore"]

log = logging.getLogger("kairos.store.redis")
T = TypeVar("T")
_PROBE_EVERY_S = 1.0
_RELISTEN_S = 1.0
_PAGE = 200


class RedisStore(NodeBook, Store):
    purge_window_runs = 1_000
    """How many runs one ``purge_expired_runs`` reads through at most."""

    def __init__(self, url: str, prefix: str = "kairos:") -> None:
        """``url``: ``redis://`` or ``rediss://``; a ``prefix`` in its query overrides
        ``prefix``, the start of every key's name."""
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        prefix = query.pop("prefix", [prefix])[0]
        url = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
        self._where = f"{parts.hostname}:{parts.port or 6379}"  # never a password in a message
        self.k = Keys(prefix)
        self._url = url
        self.client: Redis = Redis.from_url(url, decode_responses=True)
        self._claimer = Claimer(self.client, self.k)
        self._liveness: dict[str, Redis] = {}
        self._installation: str | None = None
        self._wiped: str | None = None
        self._probed_at = float("-inf")
        self._probe_error: StoreUnavailable | None = None
        self._listener: asyncio.Task[None] | None = None
        self._purge_next_id = 0

    async def _tx(self, change: Callable[[tx.Tx], Awaitable[T]]) -> T:
        """Make ``change`` as one transaction on a store that is still the one opened."""
        if self._wiped is not None:
            raise StoreUnavailable(self._wiped)
        with guarded(self._where):
            return await tx.run(self.client, self.k, change)

    # Lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        with guarded(self._where):
            self._installation = await migrate(self.client, self.k, self._where)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for connection in self._liveness.values():
            await connection.aclose()
        await self.client.aclose()

    async def check_writable(self) -> None:
        if time.monotonic() - self._probed_at >= _PROBE_EVERY_S:
            self._probe_error = await self._probe()
            self._probed_at = time.monotonic()
        if self._probe_error is not None:
            raise self._probe_error

    async def _probe(self) -> StoreUnavailable | None:
        try:
            await self.check_installation()
            with guarded(self._where):
                await self.client.set(f"{self.k.prefix}probe", "1", px=60_000)
        except StoreUnavailable as exc:
            return exc
        return None

    async def check_installation(self) -> None:
        """Raise ``StoreUnavailable`` if the data opened is gone (and say so once, loudly)."""
        if self._wiped is None and self._installation is not None:
            with guarded(self._where):
                self._wiped = await wiped_reason(
                    self.client, self.k, self._installation, self._where
                )
        if self._wiped is not None:
            raise StoreUnavailable(self._wiped)

    async def watch(self, on_change: ChangeFn) -> None:
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(on_change, ready), name="kairos-listen")
        async with asyncio.timeout(10):
            await ready.wait()

    async def _listen(self, on_change: ChangeFn, ready: asyncio.Event) -> None:
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(self.k.changes)
                    ready.set()
                    on_change(None, None)  # whatever happened while not listening: look now
                    async for message in pubsub.listen():
                        if message["type"] != "message":
                            continue
                        due, _, job_id = str(message["data"]).partition(" ")
                        on_change(int(due) if due else None, job_id or None)
            except RedisError as exc:
                log.warning("lost the change feed, listening again in %.0f s: %s", _RELISTEN_S, exc)
            ready.set()
            await asyncio.sleep(_RELISTEN_S)

    async def get_meta(self, key: str) -> str | None:
        with guarded(self._where):
            value = await self.client.hget(self.k.meta, key)
        return None if value is None else str(value)

    async def set_meta_if_absent(self, key: str, value: str) -> str:
        with guarded(self._where):
            await self.client.hsetnx(self.k.meta, key, value)
            kept = await self.client.hget(self.k.meta, key)
        return str(kept)

    # Jobs --------------------------------------------------------------------------------------

    async def insert_job(self, job: JobRecord, *, by: Actor | None = None) -> None:
        await self._tx(lambda t: jobs.insert_job(t, job, by))

    async def upsert_jobs(
        self, batch: Sequence[JobRecord], *, by: Actor | None = None
    ) -> dict[str, int]:
        return await self._tx(lambda t: jobs.upsert_jobs(t, batch, by))

    async def apply_jobs(
        self,
        upserts: Sequence[JobRecord],
        deletes: Sequence[str],
        *,
        by: Actor,
        summary: dict[str, object],
    ) -> None:
        await self._tx(lambda t: jobs.apply_jobs(t, upserts, deletes, by, summary))

    async def update_job(
        self,
        job: JobRecord,
        *,
        expected_updated_us: int,
        by: Actor | None = None,
        action: str = "job.update",
    ) -> None:
        await self._tx(lambda t: jobs.update_job(t, job, expected_updated_us, by, action))

    async def get_job(self, job_id: str) -> JobRecord:
        with guarded(self._where):
            raw = await self.client.get(self.k.job(job_id))
        if raw is None:
            raise JobNotFound(job_id)
        return codec.job_from(job_id, raw)

    async def list_jobs(self, query: JobQuery, limit: int) -> list[JobRecord]:
        with guarded(self._where):
            return await jobs.list_jobs(self.client, self.k, query, limit)

    async def count_jobs(self) -> dict[JobState, int]:
        counted = dict.fromkeys(JobState, 0)
        with guarded(self._where):
            async for job in jobs.all_jobs(self.client, self.k):
                counted[job.state] += 1
        return counted

    async def count_jobs_by_task(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        with guarded(self._where):
            async for job in jobs.all_jobs(self.client, self.k):
                task = job.spec.target.task_needed
                if task is not None:
                    counted[task] = counted.get(task, 0) + 1
        return counted

    async def delete_job(
        self, job_id: str, *, purge_runs: bool = False, by: Actor | None = None
    ) -> None:
        await self._tx(lambda t: jobs.delete_job(t, job_id, purge_runs, by))

    # Runs --------------------------------------------------------------------------------------

    async def add_manual_run(
        self, job_id: str, scheduled_for_us: int, *, by: Actor | None = None
    ) -> RunRecord:
        return await self._tx(lambda t: ledger.add_manual_run(t, job_id, scheduled_for_us, by))

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
        if self._wiped is not None:
            raise StoreUnavailable(self._wiped)
        with guarded(self._where):
            return await self._claimer.claim(
                now_us,
                ahead_us,
                limit,
                node_id,
                policy,
                finished,
                lambda: self.runs_of_crashed_nodes(node_id),
            )

    async def finish_runs(self, node_id: str, finished: Sequence[FinishedRun]) -> dict[int, str]:
        if not finished:
            return {}
        return await self._tx(lambda t: ledger.finish(t, node_id, finished))

    async def interrupt_running(
        self, node_id: str | None, *, retries: int, policy: ClaimPolicy
    ) -> int:
        with guarded(self._where):
            now_us = await server_now_us(self.client)

        async def change(t: tx.Tx) -> int:
            if node_id is None:
                holders = await t.read("SMEMBERS", t.k.holders)
            else:
                holders = [node_id]
            held: list[int] = []
            for holder in sorted(holders):
                held += [int(i) for i in await t.read("SMEMBERS", t.k.running(holder))]
            return await ledger.interrupt(t, held, now_us, retries, policy)

        return await self._tx(change)

    async def cancel_run(self, run_id: int, *, by: Actor) -> RunRecord:
        return await self._tx(lambda t: ledger.cancel_run(t, run_id, by))

    async def cancelled_among(self, run_ids: Sequence[int]) -> set[int]:
        if not run_ids:
            return set()
        with guarded(self._where):
            raws = await self.client.mget([self.k.run(run_id) for run_id in run_ids])
        runs = (codec.run_from(i, raw) for i, raw in zip(run_ids, raws, strict=True) if raw)
        return {run.id for run in runs if run.status is RunStatus.CANCELLED}

    async def get_run(self, run_id: int) -> RunRecord:
        with guarded(self._where):
            raw = await self.client.get(self.k.run(run_id))
        if raw is None:
            raise RunNotFound(run_id)
        return codec.run_from(run_id, raw)

    async def list_runs(
        self,
        *,
        job_id: str | None,
        status: RunStatus | None,
        before_id: int | None,
        limit: int,
    ) -> list[RunRecord]:
        if job_id is not None:
            index = self.k.job_runs(job_id)
        elif status is not None:
            index = self.k.status(status)
        else:
            index = self.k.run_ids
        high: str = "+inf" if before_id is None else f"({before_id}"
        found: list[RunRecord] = []
        with guarded(self._where):
            while len(found) < limit:
                ids: list[str] = await command(
                    self.client, "ZREVRANGEBYSCORE", index, high, "-inf", "LIMIT", 0, _PAGE
                )
                if not ids:
                    break
                raws = await command(self.client, "MGET", *(self.k.run(int(i)) for i in ids))
                for run_id, raw in zip(ids, raws, strict=True):
                    if raw is not None:
                        run = codec.run_from(int(run_id), raw)
                        if status is None or run.status is status:
                            found.append(run)
                if len(ids) < _PAGE:
                    break
                high = f"({ids[-1]}"
        return found[: max(limit, 0)]

    # Retention ---------------------------------------------------------------------------------

    async def purge_runs(self, jobs: Sequence[tuple[str, int, int | None]]) -> int:
        return await self._tx(lambda t: retention.purge_runs(t, jobs)) if jobs else 0

    async def purge_expired_runs(self, older_than_us: int, limit: int) -> int:
        # One stretch of runs a call, from the oldest to the newest and round again.
        first = self._purge_next_id
        deleted, resume = await self._tx(
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
        with guarded(self._where):
            return await stats.run_summary(self.client, self.k, since_us, limit)

    async def job_run_counts(self, job_ids: Sequence[str]) -> dict[str, JobRunCounts]:
        with guarded(self._where):
            return await stats.job_run_counts(self.client, self.k, job_ids)

    async def purge_run_counts(self, older_than_us: int) -> None:
        with guarded(self._where):
            await stats.purge_run_counts(self.client, self.k, older_than_us)

    # Users and API keys ------------------------------------------------------------------------

    async def add_user(
        self, name: str, password_hash: str, scopes: frozenset[Scope], *, by: Actor
    ) -> UserRecord:
        return await self._tx(lambda t: accounts.add_user(t, name, password_hash, scopes, by))

    async def update_user(
        self,
        name: str,
        *,
        password_hash: str | None = None,
        scopes: frozenset[Scope] | None = None,
        by: Actor,
        action: str,
    ) -> UserRecord:
        return await self._tx(
            lambda t: accounts.update_user(t, name, password_hash, scopes, by, action)
        )

    async def get_user(self, name: str) -> UserRecord | None:
        with guarded(self._where):
            raw = await command(self.client, "HGET", self.k.users, name)
        return None if raw is None else codec.user_from(name, raw)

    async def list_users(self) -> list[UserRecord]:
        with guarded(self._where):
            found: dict[str, str] = await command(self.client, "HGETALL", self.k.users)
        return [codec.user_from(name, found[name]) for name in sorted(found)]

    async def remove_user(self, name: str, *, by: Actor) -> None:
        await self._tx(lambda t: accounts.remove_user(t, name, by))

    async def add_api_key(self, key: ApiKeyRecord, *, by: Actor) -> None:
        await self._tx(lambda t: accounts.add_api_key(t, key, by))

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        with guarded(self._where):
            raw = await command(self.client, "HGET", self.k.api_keys, key_id)
        return None if raw is None else codec.api_key_from(key_id, raw)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        with guarded(self._where):
            found: dict[str, str] = await command(self.client, "HGETALL", self.k.api_keys)
        keys = [codec.api_key_from(key_id, raw) for key_id, raw in found.items()]
        return sorted(keys, key=lambda key: (key.created_us, key.id))

    async def revoke_api_key(self, key_id: str, *, by: Actor) -> ApiKeyRecord:
        return await self._tx(lambda t: accounts.revoke_api_key(t, key_id, by))

    # Secrets -----------------------------------------------------------------------------------

    async def put_secret(self, name: str, ciphertext: str, *, by: Actor) -> bool:
        return await self._tx(lambda t: accounts.put_secret(t, name, ciphertext, by))

    async def get_secret(self, name: str) -> SecretRecord | None:
        with guarded(self._where):
            raw = await command(self.client, "HGET", self.k.secrets, name)
        return None if raw is None else codec.secret_from(name, raw)

    async def list_secrets(self) -> list[SecretRecord]:
        with guarded(self._where):
            found: dict[str, str] = await command(self.client, "HGETALL", self.k.secrets)
        return [codec.secret_from(name, found[name]) for name in sorted(found)]

    async def delete_secret(self, name: str, *, by: Actor) -> None:
        await self._tx(lambda t: accounts.delete_secret(t, name, by))

    # The audit log -----------------------------------------------------------------------------

    async def list_audit(
        self,
        *,
        target: str | None = None,
        actor: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        with guarded(self._where):
            return await accounts.list_audit(self.client, self.k, target, actor, before_id, limit)

    async def purge_audit(self, older_than_us: int, limit: int) -> int:
        return await self._tx(lambda t: accounts.purge_audit(t, older_than_us, limit))

    # Imports -----------------------------------------------------------------------------------

    async def import_jobs(self, batch: Sequence[JobRecord]) -> None:
        await self._tx(lambda t: imports.import_jobs(t, batch))

    async def import_runs(self, runs: Sequence[RunRecord]) -> None:
        await self._tx(lambda t: imports.import_runs(t, runs))

    async def import_users(self, users: Sequence[UserRecord]) -> None:
        await self._tx(lambda t: imports.import_users(t, users))

    async def import_api_keys(self, keys: Sequence[ApiKeyRecord]) -> None:
        await self._tx(lambda t: imports.import_api_keys(t, keys))

    async def import_secrets(self, secrets: Sequence[SecretRecord]) -> None:
        await self._tx(lambda t: imports.import_secrets(t, secrets))

    async def import_audit(self, records: Sequence[AuditRecord]) -> None:
        await self._tx(lambda t: imports.import_audit(t, records))
