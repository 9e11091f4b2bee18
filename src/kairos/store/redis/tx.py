"""``Tx``: one optimistic Redis transaction, the way every change of a ``RedisStore`` is made.

A change reads what it needs through the ``Tx`` (each key read is ``WATCH``ed first), decides in
Python, and queues its writes; ``commit`` sends them in one ``MULTI``/``EXEC``. If any key read
changed meanwhile, Redis refuses the ``EXEC`` and the whole change is made again from fresh
reads (``run``). Two changes that read the same record can therefore never both commit against
what they read. (The claim commits without ``WATCH``, checking in a script what it read:
``claim``.)

The ``Tx`` keeps what it read and wrote, so a change sees its own writes, and it keeps the
indexes (due times, tags, run statuses, fires) in step with the records, as ``Tables`` does for
the memory store (and ``scripts.COMMIT`` for the claim's writes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from kairos.identity import Actor, AuditRecord
from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store.redis import codec, stats
from kairos.store.redis.keys import Keys

__all__ = ["Tx", "run"]

T = TypeVar("T")
_AUDIT_NAME_CHARS = 200
# A change retried this often without committing gives up: something rewrites its keys nonstop.
_ATTEMPTS = 200
# The writes of a transaction, a JSON list of commands (each a list of strings), run in order.
_APPLY = """
for _, command in ipairs(cjson.decode(ARGV[1])) do
    redis.call(unpack(command))
end
"""
# Which of several fires the ledger holds, in one round trip: KEYS are the jobs' ledgers, ARGV
# the fields (``<scheduled_for_us>:<attempt>``), one each.
_FIRES_TAKEN = """
local taken = {}
for i, key in ipairs(KEYS) do taken[i] = redis.call('HEXISTS', key, ARGV[i]) end
return taken
"""


class Tx:
    def __init__(self, pipe: Pipeline, keys: Keys) -> None:
        self.pipe = pipe
        self.k = keys
        self._watched: set[str] = set()
        self._jobs: dict[str, JobRecord | None] = {}
        self._runs: dict[int, RunRecord | None] = {}
        self.writes: list[tuple[Any, ...]] = []
        self._holders: set[str] = set()
        """Nodes this transaction has listed among the holders of runs."""

    async def watch(self, *keys: str) -> None:
        fresh = [key for key in keys if key not in self._watched]
        if fresh:
            await self.pipe.watch(*fresh)
            self._watched.update(fresh)

    async def read(self, command: str, key: str, *args: Any) -> Any:
        """Run a read command on ``key``, watched from now on."""
        await self.watch(key)
        return await self._now(command, key, *args)

    async def _now(self, *command: Any) -> Any:
        """Run a command at once (before ``MULTI``, a watching pipeline does)."""
        return await self.pipe.execute_command(*command)

    def write(self, *command: Any) -> None:
        self.writes.append(command)

    def notify(self, due_us: int | None, job_id: str | None = None) -> None:
        """Announce a change to the other processes (``Store.watch``), at commit."""
        payload = f"{'' if due_us is None else due_us} {job_id or ''}".rstrip()
        self.write("PUBLISH", self.k.changes, payload)

    async def new_id(self, counter: str) -> int:
        """A fresh id: never given twice, even if this transaction is tried again."""
        return int(await self._now("INCR", counter))

    async def new_ids(self, counter: str, count: int) -> list[int]:
        """``count`` fresh ids (see ``new_id``), in one round trip."""
        if count <= 0:
            return []
        last = int(await self._now("INCRBY", counter, count))
        return list(range(last - count + 1, last + 1))

    # Jobs --------------------------------------------------------------------------------------

    async def job(self, job_id: str) -> JobRecord | None:
        if job_id not in self._jobs:
            raw = await self.read("GET", self.k.job(job_id))
            self._jobs[job_id] = None if raw is None else codec.job_from(job_id, raw)
        return self._jobs[job_id]

    async def jobs(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        missing = [job_id for job_id in job_ids if job_id not in self._jobs]
        if missing:
            await self.watch(*(self.k.job(job_id) for job_id in missing))
            raws = await self._now("MGET", *(self.k.job(i) for i in missing))
            for job_id, raw in zip(missing, raws, strict=True):
                self._jobs[job_id] = None if raw is None else codec.job_from(job_id, raw)
        return [self._jobs[job_id] for job_id in job_ids]

    async def put_job(self, job: JobRecord) -> None:
        """Add or replace a job (read first, so its indexes can be moved)."""
        old = await self.job(job.id)
        self._jobs[job.id] = job
        self.write("SET", self.k.job(job.id), codec.job_to(job))
        self._index_job(job.id, old, job)

    async def remove_job(self, job_id: str) -> JobRecord | None:
        old = await self.job(job_id)
        if old is not None:
            self._jobs[job_id] = None
            self.write("DEL", self.k.job(job_id))
            self._index_job(job_id, old, None)
        return old

    def _index_job(self, job_id: str, old: JobRecord | None, new: JobRecord | None) -> None:
        k = self.k
        if old is None:
            self.write("ZADD", k.job_ids, 0, job_id)
        elif new is None:
            self.write("ZREM", k.job_ids, job_id)
        old_due = None if old is None else old.next_run_us
        new_due = None if new is None else new.next_run_us
        if old_due != new_due:
            if new_due is None:
                self.write("ZREM", k.due, job_id)
            else:
                self.write("ZADD", k.due, new_due, job_id)
        old_tags = set() if old is None else set(old.spec.tags)
        new_tags = set() if new is None else set(new.spec.tags)
        for tag in old_tags - new_tags:
            self.write("ZREM", k.tag(tag), job_id)
        for tag in new_tags - old_tags:
            self.write("ZADD", k.tag(tag), 0, job_id)
        stats.job_changed(self.write, k, old, new)

    # Runs --------------------------------------------------------------------------------------

    async def run(self, run_id: int) -> RunRecord | None:
        if run_id not in self._runs:
            raw = await self.read("GET", self.k.run(run_id))
            self._runs[run_id] = None if raw is None else codec.run_from(run_id, raw)
        return self._runs[run_id]

    async def runs(self, run_ids: Sequence[int]) -> list[RunRecord | None]:
        missing = [run_id for run_id in run_ids if run_id not in self._runs]
        if missing:
            await self.watch(*(self.k.run(run_id) for run_id in missing))
            raws = await self._now("MGET", *(self.k.run(i) for i in missing))
            for run_id, raw in zip(missing, raws, strict=True):
                self._runs[run_id] = None if raw is None else codec.run_from(run_id, raw)
        return [self._runs[run_id] for run_id in run_ids]

    async def fire_taken(self, job_id: str, scheduled_for_us: int, attempt: int) -> bool:
        """Whether the ledger holds this fire (its key: job, scheduled time, attempt)."""
        return (await self.fires_taken([(job_id, scheduled_for_us, attempt)]))[0]

    async def fires_taken(self, fires: Sequence[tuple[str, int, int]]) -> list[bool]:
        """Of each ``(job, scheduled time, attempt)``: whether the ledger holds it."""
        if not fires:
            return []
        keys = [self.k.fires(job_id) for job_id, _, _ in fires]
        await self.watch(*keys)
        fields = [f"{at}:{attempt}" for _, at, attempt in fires]
        taken = await self._now("EVAL", _FIRES_TAKEN, len(keys), *keys, *fields)
        return [bool(flag) for flag in taken]

    def add_run(self, run: RunRecord) -> None:
        """Record a new run (its fire free: see ``fire_taken``)."""
        self._runs[run.id] = run
        k = self.k
        self.write("SET", k.run(run.id), codec.run_to(run))
        self.write("ZADD", k.run_ids, run.id, run.id)
        self.write("ZADD", k.job_runs(run.job_id), run.id, run.id)
        self.write("HSET", k.fires(run.job_id), f"{run.scheduled_for_us}:{run.attempt}", run.id)
        self._index_status(None, run)

    def replace_run(self, old: RunRecord, new: RunRecord) -> None:
        self._runs[new.id] = new
        self.write("SET", self.k.run(new.id), codec.run_to(new))
        self._index_status(old, new)

    def remove_run(self, run: RunRecord) -> None:
        self._runs[run.id] = None
        k = self.k
        self.write("DEL", k.run(run.id))
        self.write("ZREM", k.run_ids, run.id)
        self.write("ZREM", k.job_runs(run.job_id), run.id)
        self.write("HDEL", k.fires(run.job_id), f"{run.scheduled_for_us}:{run.attempt}")
        self._index_status(run, None)

    def _index_status(self, old: RunRecord | None, new: RunRecord | None) -> None:
        k = self.k
        some = new if new is not None else old
        assert some is not None
        stats.run_changed(self.write, k, old, new)
        if old is None or new is None or old.status is not new.status:
            if old is not None:
                self.write("ZREM", k.status(old.status), old.id)
            if new is not None:
                self.write("ZADD", k.status(new.status), new.id, new.id)
        old_due = _queued_due(old)
        new_due = _queued_due(new)
        if old_due != new_due:
            if new_due is None:
                self.write("ZREM", k.queued, some.id)
            else:
                self.write("ZADD", k.queued, new_due, some.id)
        old_node = _running_node(old)
        new_node = _running_node(new)
        if old_node != new_node:
            if old_node is not None:
                self.write("SREM", k.running(old_node), some.id)
                self.write("HINCRBY", k.running_jobs, some.job_id, -1)
            if new_node is not None:
                self.write("SADD", k.running(new_node), some.id)
                if new_node not in self._holders:
                    self._holders.add(new_node)
                    self.write("SADD", k.holders, new_node)
                self.write("HINCRBY", k.running_jobs, some.job_id, 1)

    # The audit log -----------------------------------------------------------------------------

    async def audit(self, by: Actor, action: str, target: str, detail: Any = None) -> None:
        """Record a change made in this transaction (``detail`` kept as JSON, a string as is)."""
        if detail is not None and not isinstance(detail, str):
            detail = codec.dumps(detail)
        audit_id = await self.new_id(self.k.audit_seq)
        name, target = by.name[:_AUDIT_NAME_CHARS], target[:_AUDIT_NAME_CHARS]
        self.add_audit(AuditRecord(audit_id, by.at_us, name, action, target, detail))

    def add_audit(self, record: AuditRecord) -> None:
        """Write ``record`` under its id (fresh: see ``new_id``) and index it."""
        k, audit_id = self.k, record.id
        self.write("HSET", k.audit, audit_id, codec.audit_to(record))
        self.write("ZADD", k.audit_ids, audit_id, audit_id)
        self.write("ZADD", k.audit_target(record.target), audit_id, audit_id)
        self.write("ZADD", k.audit_actor(record.actor), audit_id, audit_id)

    async def commit(self) -> None:
        """Send the writes as one script in one ``MULTI``/``EXEC``: the server runs them, so a
        claim's hundreds of writes cost one command to send instead of hundreds."""
        self.pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
        if self.writes:
            # Every word a string: Lua would print a large number in floating point.
            words = [[str(word) for word in command] for command in self.writes]
            self.pipe.execute_command("EVAL", _APPLY, 0, codec.dumps(words))
        await self.pipe.execute()


async def run(
    client: Redis,
    keys: Keys,
    change: Callable[[Tx], Awaitable[T]],
) -> T:
    """Make ``change`` as one transaction, again from fresh reads while others interfere."""
    for _ in range(_ATTEMPTS):
        async with client.pipeline(transaction=True) as pipe:
            tx = Tx(pipe, keys)
            result = await change(tx)
            try:
                await tx.commit()
            except WatchError:
                continue
            return result
    raise RuntimeError("a Redis transaction kept meeting concurrent changes; try again")


def _queued_due(run: RunRecord | None) -> int | None:
    if run is None or run.status is not RunStatus.SCHEDULED:
        return None
    return run.due_us


def _running_node(run: RunRecord | None) -> str | None:
    if run is None or run.status is not RunStatus.RUNNING:
        return None
    return run.node_id
