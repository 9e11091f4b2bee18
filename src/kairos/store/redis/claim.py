"""``Claimer``: ``Store.claim_due`` on Redis, in two scripts and without ``WATCH``.

One script reads what the claim plans from (``scripts.READ``): the finished runs, the queued runs
due and a page of the jobs due, with their jobs and their counts of runs in flight. The engine's
``ClaimPolicy`` plans each job in Python. One script commits (``scripts.COMMIT``), job by job:
a job's part of the claim (its queued runs started or missed, its new runs, its move to its next
fire) is applied only if the job's record, its count of runs in flight and its queued runs'
records are still as read. A job changed meanwhile (another replica claimed it, the API replaced
it) is skipped and stays due for the next claim; the rest of the claim stands. Each new run takes
its fire in the job's ledger inside the script, which Redis runs whole, so a fire becomes a run
exactly once, and replicas claiming overlapping jobs each keep what they won instead of starting
over. Where several nodes beat, a claim's page of due jobs starts at a random point among the
first pages, so that replicas claiming at once mostly take different jobs.

The finished runs are recorded by the same commit, each only if its record is as read (running
under this node), in the order they ended. Those that ask for a retry or move a circuit breaker
(and any that ended before them) are recorded first, in a ``Tx`` of their own
(``ledger.finish``); a job whose plan says to pause it is paused by a ``Tx`` after the commit, if
it is still as read. The commit keeps the summaries (``stats``) of every run it ends, as ``Tx``
does for the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store.claims import (
    Claim,
    ClaimPolicy,
    FinishedRun,
    PlannedRun,
    QueuedRun,
    Slots,
    StartedRun,
)
from kairos.store.redis import breaker, codec, ledger, scripts, stats, tx
from kairos.store.redis.jobs import check_int64
from kairos.store.redis.keys import Keys
from kairos.store.redis.nodes import tasks_of
from kairos.store.specs import SpecCache

__all__ = ["Claimer"]

_CHUNK = 100
_PEEK = 10
"""Jobs or runs read at a time when looking for the next due (the first usually is)."""
_SPREAD = 4
"""How many claims' worth of due jobs a claim may skip, per other node beating."""
_RUNNING, _SCHEDULED, _MISSED = RunStatus.RUNNING, RunStatus.SCHEDULED, RunStatus.MISSED


@dataclass(slots=True)
class _Part:
    """One job's part of a claim: what the commit checks, and what it writes if that holds."""

    job: JobRecord
    raw: str
    in_flight: int
    """The job's runs in flight as stored once this claim's finished runs are recorded."""
    queued: list[tuple[str, RunRecord]] = field(default_factory=list)
    """Queued runs started or recorded missed: (record as read, new record)."""
    move: tuple[int | None, int | None] | None = None
    """The job's next fire and due time."""
    planned: list[tuple[PlannedRun, RunRecord]] = field(default_factory=list)
    """New runs as planned and as recorded, their ids 0 until the commit gives them theirs."""


@dataclass(slots=True)
class _Reply:
    """What ``scripts.READ`` gives."""

    node: str | None
    """The node's row (its tasks)."""
    finished: list[str | None]
    queued: list[tuple[str, str | None, str | None, str | None]]
    """Queued runs due: id, record, its job's record, its job's runs in flight."""
    offset: int
    due: list[tuple[str, str | None, str | None]]
    """Jobs due from ``offset`` on: id, record, runs in flight."""


@dataclass(slots=True)
class _Pass:
    """One claim as it reads and plans."""

    node_id: str
    now_us: int
    tasks: frozenset[str]
    gone: dict[str, int]
    specs: SpecCache
    finishing: list[tuple[str, RunRecord]] = field(default_factory=list)
    """Finished runs to record: (record as read, new record)."""
    ending: Counter[str] = field(default_factory=Counter)
    """Of each job, how many of its runs in flight ``finishing`` ends."""
    parts: dict[str, _Part] = field(default_factory=dict)
    waiting: bool = False
    starting: int = 0
    """New runs planned to start."""
    unplannable: list[tuple[_Part, str]] = field(default_factory=list)

    def part(self, job_id: str, raw: str, in_flight: str | None) -> _Part:
        """The part of the job with ``raw`` as its record (the first read of it, if several)."""
        found = self.parts.get(job_id)
        if found is None:
            count = int(in_flight or 0) - self.ending[job_id]
            found = self.parts[job_id] = _Part(self.job(job_id, raw), raw, count)
        return found

    def job(self, job_id: str, raw: str) -> JobRecord:
        return codec.job_from(job_id, raw, self.specs.parse)

    def running(self, part: _Part, begun: int) -> int:
        """The job's runs in flight before this pass (``begun`` of them started by it), those
        of crashed nodes left out."""
        return max(part.in_flight + begun - self.gone.get(part.job.id, 0), 0) - begun

    def callable(self, job: JobRecord) -> bool:
        needed = job.spec.target.task_needed
        return needed is None or needed in self.tasks


class Claimer:
    """The claim's scripts, registered once on a store's client."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self.client = client
        self.k = keys
        self._read_script = client.register_script(scripts.READ)
        self._commit_script = client.register_script(scripts.COMMIT)
        self._next_script = client.register_script(scripts.NEXT)
        self._specs = SpecCache()

    async def claim(
        self,
        now_us: int,
        ahead_us: int,
        limit: int,
        node_id: str,
        policy: ClaimPolicy,
        finished: Sequence[FinishedRun],
        crashed: Callable[[], Awaitable[dict[str, int]]],
    ) -> Claim:
        """``Store.claim_due``; ``crashed()``: runs per job that crashed nodes still hold, asked
        only when a job claimed has runs in flight."""
        special, plain = _split(finished)
        paused = {}
        if special:
            paused = await tx.run(self.client, self.k, lambda t: ledger.finish(t, node_id, special))
        due_by = now_us + ahead_us
        first = await self._read(node_id, now_us, 0, limit, due_by, 0, limit, True, plain)
        this = _Pass(node_id, now_us, tasks_of(first.node), {}, self._specs)
        _finishing(this, plain, first.finished)
        pending = await self._pending(this, first, limit)
        due = await self._due(this, first, due_by, limit)
        if any(part.in_flight > 0 for part in this.parts.values()):
            this.gone = await crashed()
        queued = _start_pending(this, pending, limit, policy)
        _plan_due(this, due, limit - len(queued), policy, Counter(p.job.id for p, _ in queued))
        surely_more = len(due) >= limit or len(queued) + this.starting >= limit
        applied, peek = await self._commit(this, 0 if surely_more else _PEEK)
        started, recorded = _outcome(this, applied, queued)
        await self._pause_unplannable(this)
        exhausted = len(due) >= limit or len(started) >= limit
        next_due = None if exhausted else await self._next_due(this, peek)
        return Claim(started, recorded, exhausted, next_due, this.waiting, paused)

    # Reading -----------------------------------------------------------------------------------

    async def _read(
        self,
        node_id: str,
        now_us: int,
        queued_offset: int,
        queued_count: int,
        due_by: int,
        due_offset: int,
        due_count: int,
        spread: bool = False,
        finished: Sequence[FinishedRun] = (),
    ) -> _Reply:
        k = self.k
        args: list[Any] = [k.job(""), k.run(""), node_id, now_us, queued_offset, queued_count]
        args += [due_by, due_offset, due_count, due_count * _SPREAD if spread else 0]
        args += [random.random(), *(f.run_id for f in finished)]
        keys = [k.due, k.queued, k.running_jobs, k.beats, k.nodes]
        reply = await self._read_script(keys, args)
        node, ended, q_ids, q_raws, q_jobs, q_counts, offset, ids, raws, counts = reply
        queued = list(zip(q_ids, q_raws, q_jobs, q_counts, strict=True))
        due = list(zip(ids, raws, counts, strict=True))
        return _Reply(node, ended, queued, int(offset), due)

    async def _pending(
        self, this: _Pass, reply: _Reply, budget: int
    ) -> list[tuple[_Part, str, RunRecord]]:
        """The first ``budget`` queued runs due that this node can call, with their jobs."""
        pending: list[tuple[_Part, str, RunRecord]] = []
        rows, asked, offset = reply.queued, budget, 0
        while True:
            for run_id, raw, job_raw, in_flight in rows:
                if raw is None or job_raw is None or len(pending) >= budget:
                    continue
                run = codec.run_from(int(run_id), raw)
                part = this.part(run.job_id, job_raw, in_flight)
                if run.status is _SCHEDULED and this.callable(part.job):
                    pending.append((part, raw, run))
            offset += len(rows)
            if len(rows) < asked or len(pending) >= budget:
                return pending
            asked = _CHUNK
            rows = (await self._read(this.node_id, this.now_us, offset, asked, 0, 0, 0)).queued

    async def _due(self, this: _Pass, reply: _Reply, due_by: int, limit: int) -> list[_Part]:
        """The first ``limit`` jobs due by ``due_by`` that this node can call, from where the
        page read starts, then from the first."""
        found: list[_Part] = []
        seen: set[str] = set()
        rows, asked, offset = reply.due, limit, reply.offset
        wrapped = offset == 0
        while True:
            for job_id, raw, in_flight in rows:
                if raw is None or job_id in seen or len(found) >= limit:
                    continue
                seen.add(job_id)
                part = this.part(job_id, raw, in_flight)
                due_us = part.job.next_run_us
                if due_us is not None and due_us <= due_by and this.callable(part.job):
                    found.append(part)
            offset += len(rows)
            if len(found) >= limit:
                return found
            if len(rows) < asked:
                if wrapped:
                    return found
                wrapped, offset = True, 0
            asked = _CHUNK
            rows = (await self._read(this.node_id, this.now_us, 0, 0, due_by, offset, asked)).due

    # Committing --------------------------------------------------------------------------------

    async def _commit(
        self, this: _Pass, peek: int
    ) -> tuple[list[tuple[_Part, list[int]]], list[Any] | None]:
        """Apply the claim; return the parts applied, each with its new runs' ids (0: the
        ledger held the fire already), and (if ``peek``) what ``scripts.NEXT`` would give."""
        units: list[Any] = [
            (
                "F",
                run.id,
                run.job_id,
                _digest(raw),
                codec.run_to(run),
                run.status.value,
                stats.counted(run),
            )
            for raw, run in this.finishing
        ]
        parts = [p for p in this.parts.values() if p.queued or p.move is not None]
        units += [_job_unit(part) for part in parts]
        if not units:
            return [], None
        k = self.k
        keys = [k.due, k.queued, k.running_jobs, k.run_ids, k.holders, k.run_seq]
        keys += [k.running(this.node_id), k.ended_minutes, k.failing]
        args: list[Any] = [this.node_id, _RUNNING.value, _SCHEDULED.value, *k.families()]
        args += [peek, this.now_us, codec.dumps(units)]
        done, *peeked = await self._commit_script(keys, args)
        jobs_done = done[len(this.finishing) :]
        applied = [(p, ids) for p, (ok, *ids) in zip(parts, jobs_done, strict=True) if ok]
        return applied, peeked[0] if peeked else None

    async def _pause_unplannable(self, this: _Pass) -> None:
        """Pause the jobs whose fires could not be planned, those still as read."""
        if not this.unplannable:
            return

        async def change(t: tx.Tx) -> None:
            for part, reason in this.unplannable:
                job_id = part.job.id
                if await t.read("GET", t.k.job(job_id)) == part.raw:
                    await breaker.set_paused(
                        t,
                        job_id,
                        True,
                        _not_paused,
                        this.now_us,
                        pause_reason=reason,
                        next_run_us=None,
                    )

        await tx.run(self.client, self.k, change)

    # The next due ------------------------------------------------------------------------------

    async def _next_due(self, this: _Pass, peek: list[Any] | None) -> int | None:
        """When the next job or queued run that this node can call falls due, from ``peek``
        (the commit's, if it peeked) on."""
        job_due = run_due = None
        jobs_offset = runs_offset = 0
        jobs_open = runs_open = True
        while True:
            if peek is None:
                peek = await self._peek(this, jobs_offset, jobs_open, runs_offset, runs_open)
            due, due_raws, later, raws, job_raws = peek
            if jobs_open:
                job_due = _first_job(this, due, due_raws)
                jobs_offset += len(due)
                jobs_open = job_due is None and len(due) == _PEEK
            if runs_open:
                run_due = _first_run(this, later, raws, job_raws)
                runs_offset += len(later)
                runs_open = run_due is None and len(later) == _PEEK
            if not (jobs_open or runs_open):
                return min((at for at in (job_due, run_due) if at is not None), default=None)
            peek = None

    async def _peek(
        self, this: _Pass, jobs_offset: int, jobs: bool, runs_offset: int, runs: bool
    ) -> list[Any]:
        k = self.k
        args: list[Any] = [k.job(""), k.run(""), jobs_offset, _PEEK if jobs else 0, this.now_us]
        args += [runs_offset, _PEEK if runs else 0]
        peeked: list[Any] = await self._next_script([k.due, k.queued], args)
        return peeked


def _first_job(this: _Pass, ids: list[str], raws: list[str | None]) -> int | None:
    for job_id, raw in zip(ids, raws, strict=True):
        job = None if raw is None else this.job(job_id, raw)
        if job is not None and job.next_run_us is not None and this.callable(job):
            return job.next_run_us
    return None


def _first_run(
    this: _Pass, ids: list[str], raws: list[str | None], job_raws: list[str | None]
) -> int | None:
    for run_id, raw, job_raw in zip(ids, raws, job_raws, strict=True):
        if raw is None or job_raw is None:
            continue
        run = codec.run_from(int(run_id), raw)
        if run.status is _SCHEDULED and this.callable(this.job(run.job_id, job_raw)):
            return run.due_us
    return None


def _split(finished: Sequence[FinishedRun]) -> tuple[list[FinishedRun], list[FinishedRun]]:
    """The outcomes to record in a ``Tx`` first: those that ask for a retry or move a circuit
    breaker, and any that ended by the last of these; and the rest, for the commit, in the order
    they ended. So the outcomes are written in the order ``ledger.finish`` writes them all in,
    and a job's last call in the summaries is the same (the last outcome written)."""
    by_us = max((f.finished_us for f in finished if _special(f)), default=None)
    if by_us is None:
        return [], sorted(finished, key=_ended_us)
    first = [f for f in finished if f.finished_us <= by_us or _special(f)]
    rest = [f for f in finished if f.finished_us > by_us and not _special(f)]
    return first, sorted(rest, key=_ended_us)


def _special(outcome: FinishedRun) -> bool:
    return outcome.retry_due_us is not None or outcome.verdict is not None


def _ended_us(outcome: FinishedRun) -> int:
    return outcome.finished_us


def _finishing(this: _Pass, finished: Sequence[FinishedRun], raws: list[str | None]) -> None:
    """Note the outcomes to record: of the runs still running under this node (fenced, as
    ``Store.finish_runs`` says)."""
    for outcome, raw in zip(finished, raws, strict=True):
        if raw is None:
            continue
        run = codec.run_from(outcome.run_id, raw)
        if run.status is not _RUNNING or run.node_id != this.node_id:
            continue
        new = dataclasses.replace(
            run,
            status=outcome.status,
            started_us=outcome.started_us,
            finished_us=outcome.finished_us,
            http_status=outcome.http_status,
            error=outcome.error,
            response_excerpt=outcome.response_excerpt,
        )
        this.finishing.append((raw, new))
        this.ending[run.job_id] += 1


def _start_pending(
    this: _Pass, pending: list[tuple[_Part, str, RunRecord]], budget: int, policy: ClaimPolicy
) -> list[tuple[_Part, RunRecord]]:
    """Start the queued runs ``pending`` as ``policy`` admits them, or record them too late;
    return those started."""
    begun: Counter[str] = Counter()
    started: list[tuple[_Part, RunRecord]] = []
    for part, raw, run in pending:
        job = part.job
        assert run.due_us is not None
        queued = QueuedRun(run.id, run.scheduled_for_us, run.due_us, run.attempt, run.manual)
        slots = Slots(this.running(part, 0), begun[job.id], budget - len(started))
        admitted = policy.admit_queued(queued, job, this.now_us, slots)
        if admitted.status is _MISSED:
            gone = dataclasses.replace(run, status=_MISSED, due_us=None, error=admitted.error)
            part.queued.append((raw, dataclasses.replace(gone, finished_us=this.now_us)))
        elif admitted.status is _RUNNING:
            begun[job.id] += 1
            new = dataclasses.replace(
                run, status=_RUNNING, node_id=this.node_id, started_us=this.now_us, due_us=None
            )
            part.queued.append((raw, new))
            started.append((part, new))
        else:
            this.waiting = True
    return started


def _plan_due(
    this: _Pass, due: list[_Part], budget: int, policy: ClaimPolicy, begun: Counter[str]
) -> None:
    """Plan the fires of the jobs ``due`` (``begun``: their queued runs this pass started)."""
    for part in due:
        job = part.job
        slots = Slots(this.running(part, begun[job.id]), begun[job.id], budget)
        fire_plan = policy.plan_due(job, this.now_us, slots)
        if fire_plan.pause_reason is not None:
            this.unplannable.append((part, fire_plan.pause_reason))
            continue
        for planned in fire_plan.runs:
            check_int64(planned.scheduled_for_us)
            if planned.status is _RUNNING:
                budget -= 1
                this.starting += 1
            elif planned.status is _SCHEDULED:
                this.waiting = True  # queued behind a run started in this pass
            part.planned.append((planned, _planned_run(this, job, planned)))
        check_int64(fire_plan.next_fire_us, fire_plan.next_run_us)
        part.move = (fire_plan.next_fire_us, fire_plan.next_run_us)


def _planned_run(this: _Pass, job: JobRecord, planned: PlannedRun, run_id: int = 0) -> RunRecord:
    """The run of a planned fire of ``job`` (0: its id to come)."""
    at, status, node_id = planned.scheduled_for_us, planned.status, this.node_id
    if status is _RUNNING:
        started_us = max(this.now_us, _due_of(job, at))
        return RunRecord(run_id, job.id, at, 1, status, node_id=node_id, started_us=started_us)
    if status is _SCHEDULED:
        return RunRecord(run_id, job.id, at, 1, status, due_us=at)
    finished_us, error = this.now_us, planned.error
    return RunRecord(
        run_id, job.id, at, 1, status, node_id=node_id, finished_us=finished_us, error=error
    )


def _job_unit(part: _Part) -> tuple[Any, ...]:
    """The commit's unit of one job's part (see ``scripts.COMMIT``)."""
    kept, rest, due_us = 0, "", ""
    if part.move is not None:
        kept, rest = codec.job_moved(part.raw, *part.move)
        due_us = "" if part.move[1] is None else str(part.move[1])
    queued = [
        (run.id, _digest(raw), codec.run_to(run), run.status.value, stats.counted(run))
        for raw, run in part.queued
    ]
    planned = [
        (
            f"{run.scheduled_for_us}:1",
            run.status.value,
            codec.run_to(run),
            "" if run.due_us is None else str(run.due_us),
            stats.counted(run),
        )
        for _, run in part.planned
    ]
    digest = _digest(part.raw)
    return ("J", part.job.id, digest, part.in_flight, kept, rest, due_us, queued, planned)


def _digest(raw: str) -> str:
    """What the commit checks a record against (``scripts.COMMIT``)."""
    return hashlib.sha1(raw.encode()).hexdigest()


def _outcome(
    this: _Pass, applied: list[tuple[_Part, list[int]]], queued: list[tuple[_Part, RunRecord]]
) -> tuple[list[StartedRun], Counter[RunStatus]]:
    """The runs started (queued ones first) and how many others were recorded, of the parts
    the commit applied."""
    kept = {part.job.id for part, _ in applied}
    started = [StartedRun(r, p.job, r.scheduled_for_us) for p, r in queued if p.job.id in kept]
    recorded: Counter[RunStatus] = Counter()
    for part, ids in applied:
        for _, run in part.queued:
            if run.status is _MISSED:
                recorded[_MISSED] += 1
        for (planned, _), run_id in zip(part.planned, ids, strict=True):
            if not run_id:
                continue  # the ledger holds the fire already
            if planned.status is _RUNNING:
                run = _planned_run(this, part.job, planned, run_id)
                started.append(StartedRun(run, part.job, _due_of(part.job, run.scheduled_for_us)))
            elif planned.status is not _SCHEDULED:
                recorded[planned.status] += 1
    return started, recorded


def _due_of(job: JobRecord, scheduled_for_us: int) -> int:
    """A planned fire's due time: its nominal time, plus the job's jitter for the fire the job
    was waiting for (catch-up fires are due at once anyway)."""
    if scheduled_for_us == job.next_fire_us and job.next_run_us is not None:
        return job.next_run_us
    return scheduled_for_us


def _not_paused(job: JobRecord) -> bool:
    return not job.spec.paused
