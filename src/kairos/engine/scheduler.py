"""``Scheduler``: the one facade the API, the CLI and the web UI drive.

It validates and schedules job specs, keeps the dispatcher told about changes, and owns the
lifecycle of the store, the executor and the dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import datetime
from typing import Any, Self
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from kairos import triggers
from kairos.clock import Clock, SystemClock, from_us
from kairos.engine.admission import Admission
from kairos.engine.apply import ApplyPlan, plan_apply
from kairos.engine.cancels import CancelWatch
from kairos.engine.dispatcher import Dispatcher
from kairos.engine.hosts import HostState
from kairos.engine.membership import Membership
from kairos.engine.notifier import Notifier
from kairos.engine.options import EngineOptions
from kairos.engine.overview import Overview, read_overview
from kairos.engine.policies import Planner
from kairos.engine.retention import Retention
from kairos.engine.secrets import Secrets
from kairos.engine.telemetry import Telemetry
from kairos.errors import InvalidField, StoreUnavailable
from kairos.executors import executor_for
from kairos.executors.base import Executor
from kairos.identity import Actor, AuditRecord
from kairos.models import (
    LAST_YEAR,
    JobRecord,
    JobSpec,
    JobState,
    RunRecord,
    RunStatus,
    TriggerSpec,
)
from kairos.pagination import Page, id_cursor, job_cursor, job_key, page_of
from kairos.settings import Settings
from kairos.store import JobQuery, JobRunCounts, NodeInfo, SecretRecord, Store, store_for_url
from kairos.tasks import TaskRegistry

__all__ = ["Scheduler"]

log = logging.getLogger("kairos.scheduler")

SYSTEM = "system"
"""The actor of changes made by code that embeds Kairos and names no one."""

# Scheduling a job is pure CPU (parsing its trigger, finding its first fire): a large batch hands
# the event loop back this often.
_YIELD_EVERY = 100


class Scheduler:
    """Put / replace / patch / pause / resume / run now / delete / list jobs, and run them."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        options: EngineOptions | None = None,
        *,
        clock: Clock | None = None,
        node_id: str | None = None,
        tasks: TaskRegistry | None = None,
    ) -> None:
        """``tasks``: the functions python targets may name here. While it holds any, a job
        put here must name one of them, with arguments that fit; without any, every task name
        is accepted (another node may have it), and such jobs are left to nodes that do."""
        self._store = store
        self._tasks = tasks
        self.node_id = node_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._executor = executor
        self._options = options = options or EngineOptions()
        self._clock = clock or SystemClock()
        self._planner = Planner()
        self._running: AsyncExitStack | None = None
        self.telemetry = Telemetry()
        self._secrets = Secrets(store, options.secrets_key)
        self._admission = Admission(
            store, self._clock, self._planner, options, tasks, self._secrets
        )
        self._notifier = Notifier(
            options.guard(),
            on_failure=options.on_failure,
            on_pause=options.on_pause,
            resolve=self._secrets.resolved_webhook,
        )
        self.retention = Retention(
            store,
            self._clock,
            keep_per_job=options.runs_keep_per_job,
            max_age_s=options.runs_max_age_s,
            audit_max_age_s=options.audit_max_age_s,
            on_store_error=self.telemetry.store_error,
        )
        self._dispatcher = Dispatcher(
            store=store,
            executor=executor,
            planner=self._planner,
            clock=self._clock,
            node_id=self.node_id,
            options=options,
            on_fire_end=self.retention.finished,
            notify=self._notifier.notify,
            telemetry=self.telemetry,
            resolve=self._secrets.resolved_target,
        )
        self._cancels = CancelWatch(store, self._dispatcher)
        self.membership = Membership(
            store,
            node_id=self.node_id,
            hostname=socket.gethostname(),
            lease_s=options.node_lease_s,
            heartbeat_s=options.heartbeat_s,
            retries=options.interrupted_retries,
            on_takeover=self._dispatcher.wake,
            on_store_error=self.telemetry.store_error,
            tasks=tasks.names if tasks is not None else frozenset,
            policy=self._planner,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        store: Store | None = None,
        executor: Executor | None = None,
        clock: Clock | None = None,
        tasks: TaskRegistry | None = None,
    ) -> Scheduler:
        """The scheduler ``settings`` describe, on the store and executor they name unless
        others are given; python targets call the functions of ``tasks``, and of the modules
        ``settings.tasks`` names."""
        if settings.tasks:
            loaded = TaskRegistry.from_modules(settings.tasks)
            if tasks is not None:
                loaded.include(tasks)
            tasks = loaded
        return cls(
            store or store_for_url(settings.database_url, redis_prefix=settings.redis_prefix),
            executor or executor_for(settings, tasks),
            EngineOptions.from_settings(settings),
            clock=clock,
            tasks=tasks,
        )

    # Lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (migrating it), recover from a crash, start calling targets. When
        a part fails to start, the parts started before it are stopped again, and the error
        is raised."""
        async with AsyncExitStack() as stack:
            await self._start(stack)
            self._running = stack.pop_all()

    async def stop(self) -> None:
        """Stop every part, in the reverse order of their start (no-op when not started)."""
        running, self._running = self._running, None
        if running is not None:
            await running.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _start(self, stack: AsyncExitStack) -> None:
        # Closing is registered before opening: an open or a start that fails halfway still
        # releases what it opened (threads, connections, worker processes).
        stack.push_async_callback(self._store.close)
        await self._store.open()
        if self._store.single_process:
            retries = self._options.interrupted_retries
            interrupted = await self._store.interrupt_running(
                None, retries=retries, policy=self._planner
            )
            if interrupted:
                log.warning("%d runs left running by a previous process: interrupted", interrupted)
        await self._store.watch(self._on_change)
        await self.membership.start(stack)
        stack.push_async_callback(self._executor.close)
        await self._executor.start()
        await self._notifier.start(stack)
        await self._dispatcher.start(stack)
        await self._cancels.start(stack)
        await self.retention.start(stack)

    @property
    def store(self) -> Store:
        """The store, for the code that composes an application around this scheduler: sign-in
        and accounts keep their records in it. Routes and pages go through the methods below."""
        return self._store

    def now_us(self) -> int:
        """The engine's clock, for adapters that say how long ago or how soon."""
        return self._clock.now_us()

    @property
    def node_lease_s(self) -> float:
        return self._options.node_lease_s

    @property
    def runs_in_flight(self) -> int:
        return self._dispatcher.in_flight

    @property
    def runs_parked(self) -> int:
        """Runs in flight that wait for a slot at their host, or to try connecting again."""
        return self._dispatcher.parked

    def hosts(self) -> list[HostState]:
        """The target hosts this process calls: their limits, calls in flight and waiting."""
        return self._dispatcher.hosts.hosts()

    # Jobs --------------------------------------------------------------------------------------

    async def create_job(self, job_id: str, spec: JobSpec, *, actor: str = SYSTEM) -> JobRecord:
        """Add a new job; raise ``JobExists`` if the id is taken.

        Every change takes ``actor``: who makes it, for the audit log (see ``Actor.name``)."""
        job = await self._admission.admit(job_id, spec, new=True)
        await self._store.insert_job(job, by=Actor(actor, job.updated_us))
        await self._changed(job)
        return job

    async def put_job(
        self, job_id: str, spec: JobSpec, *, actor: str = SYSTEM
    ) -> tuple[JobRecord, bool]:
        """Create the job or completely replace it. Return it and whether it was created.
        The replacement's schedule starts afresh from now; runs already started go on."""
        job = await self._admission.admit(job_id, spec)
        stored = await self._store.upsert_jobs([job], by=Actor(actor, job.updated_us))
        await self._changed(job)
        return replace(job, created_us=stored[job_id]), stored[job_id] == job.created_us

    async def put_jobs(self, batch: Sequence[tuple[str, JobSpec]], *, actor: str = SYSTEM) -> int:
        """``put_job`` for many jobs in one transaction: all are written or none (an invalid
        one is named as ``jobs.<index>...``). Ids must be distinct. Return how many were new."""
        records = []
        for index, (job_id, spec) in enumerate(batch):
            if index and index % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let due fires and other requests through meanwhile
            try:
                records.append(await self._admission.admit(job_id, spec))
            except InvalidField as exc:
                raise InvalidField(["jobs", index, *exc.loc], exc.message) from None
        stored = await self._store.upsert_jobs(records, by=self._actor(actor))
        await self._changed(*records)
        return sum(1 for job in records if stored[job.id] == job.created_us)

    async def apply_jobs(
        self,
        documents: Sequence[tuple[str, JobSpec]],
        *,
        prune_tag: str | None = None,
        dry_run: bool = False,
        actor: str = SYSTEM,
    ) -> ApplyPlan:
        """Make the jobs what ``documents`` say (ids must be distinct): create the missing,
        replace those that differ (their schedules restart, as with ``put_job``), leave the
        same alone, and with ``prune_tag`` delete the jobs with that tag that no document
        names; all in one transaction, audited as one change. An invalid document is named as
        ``jobs.<index>...`` and nothing is written. ``dry_run``: only say what would happen."""
        admit = self._admission.admit
        plan, records = await plan_apply(self._store, documents, admit, prune_tag)
        if dry_run:
            return plan
        by = self._actor(actor)
        await self._store.apply_jobs(records, plan.deleted, by=by, summary=plan.summary())
        await self._changed(*records)
        await self._revoke(*plan.deleted)
        return plan

    async def patch_job(
        self, job_id: str, changes: dict[str, Any], *, actor: str = SYSTEM
    ) -> JobRecord:
        """Replace the named top-level fields of a job's spec; the others stay as they are."""
        current = await self._store.get_job(job_id)
        merged = current.spec.model_dump(mode="json") | changes
        try:
            spec = JobSpec.model_validate(merged)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidField([str(p) for p in first["loc"]], first["msg"]) from None
        job = await self._admission.admit(
            job_id,
            spec,
            stored=current.spec,
            target_changed="target" in changes,
            created_us=current.created_us,
        )
        return await self._write_update(current, job, actor=actor, action="job.update")

    async def pause_job(self, job_id: str, *, actor: str = SYSTEM) -> JobRecord:
        """Pause; a job the circuit breaker paused becomes paused for good (no more probes)."""
        current = await self._store.get_job(job_id)
        if current.spec.paused and current.pause_reason is None:
            return current
        paused = current.spec.model_copy(update={"paused": True})
        return await self._update(current, paused, actor=actor, action="job.pause")

    async def resume_job(self, job_id: str, *, actor: str = SYSTEM) -> JobRecord:
        """Unpause; the schedule continues from now (fires missed while paused are not run)."""
        current = await self._store.get_job(job_id)
        if not current.spec.paused:
            return current
        resumed = current.spec.model_copy(update={"paused": False})
        return await self._update(current, resumed, actor=actor, action="job.resume")

    async def delete_job(
        self, job_id: str, *, purge_runs: bool = False, actor: str = SYSTEM
    ) -> None:
        """Delete the job; its run history stays unless ``purge_runs``."""
        await self._store.delete_job(job_id, purge_runs=purge_runs, by=self._actor(actor))
        await self._revoke(job_id)

    async def get_job(self, job_id: str) -> JobRecord:
        return await self._store.get_job(job_id)

    async def list_jobs(self, query: JobQuery, limit: int) -> list[JobRecord]:
        return await self._store.list_jobs(query, limit)

    async def count_jobs(self) -> dict[JobState, int]:
        return await self._store.count_jobs()

    # Runs --------------------------------------------------------------------------------------

    async def run_now(self, job_id: str, *, actor: str = SYSTEM) -> RunRecord:
        """Queue one run outside the schedule; it starts as soon as capacity allows."""
        by = self._actor(actor)
        run = await self._store.add_manual_run(job_id, by.at_us, by=by)
        self._dispatcher.wake()
        return run

    async def cancel_run(self, run_id: int, *, actor: str = SYSTEM) -> RunRecord:
        """Stop a queued or running run, on whichever node holds it (within a second, at
        once on this one); it is recorded ``cancelled`` and not retried. ``RunNotFound``;
        ``RunEnded`` for a run that has ended."""
        run = await self._store.cancel_run(run_id, by=self._actor(actor))
        self._dispatcher.cancel(run_id)
        self.telemetry.ended(RunStatus.CANCELLED, None)
        return run

    async def get_run(self, run_id: int) -> RunRecord:
        return await self._store.get_run(run_id)

    async def list_runs(
        self,
        *,
        job_id: str | None = None,
        status: RunStatus | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        if job_id is not None:
            await self._store.get_job(job_id)  # 404 for an unknown job, not an empty page
        return await self._store.list_runs(
            job_id=job_id, status=status, before_id=before_id, limit=limit
        )

    async def newest_runs(self, job_ids: Sequence[str], limit: int) -> dict[str, list[RunRecord]]:
        """Each job's newest ``limit`` runs, newest first (an unknown job: none), in one read
        where the store can: what a list of jobs shows of their history."""
        return await self._store.newest_runs(job_ids, limit)

    # Secrets -----------------------------------------------------------------------------------

    async def set_secret(self, name: str, value: str, *, actor: str = SYSTEM) -> bool:
        """Keep ``value`` (encrypted) as the secret ``name``; True when it is new. Raise
        ``SecretsKeyMissing`` when this server has no key to encrypt it with."""
        try:
            return await self._secrets.set(name, value, by=self._actor(actor))
        except ValueError as exc:
            raise InvalidField(["name"], str(exc), source="path") from None

    async def delete_secret(self, name: str, *, actor: str = SYSTEM) -> None:
        """Forget a secret (``SecretNotFound``); the jobs that refer to it stay, and their
        calls fail, naming the reference, until it is set again."""
        await self._secrets.delete(name, by=self._actor(actor))

    async def list_secrets(self) -> list[SecretRecord]:
        """Every secret by name, its value encrypted: adapters show names and times only."""
        return await self._secrets.list()

    # Pages, the cluster, the audit log: what the adapters read -----------------------------

    async def job_page(self, query: JobQuery, limit: int, cursor: str | None) -> Page[JobRecord]:
        """Up to ``limit`` jobs of ``query`` after ``cursor`` (the ``next_cursor`` of the page
        before, with the same query); ``InvalidField`` on ``cursor`` if it is not one of ours."""
        after = job_cursor(cursor, by_next_run=query.by_next_run)
        jobs = await self.list_jobs(replace(query, after=after), limit + 1)
        return page_of(jobs, limit, lambda job: job_key(job, query.by_next_run))

    async def run_page(
        self, *, job_id: str | None, status: RunStatus | None, cursor: str | None, limit: int
    ) -> Page[RunRecord]:
        """Runs newest first, as ``list_runs``, paged as ``job_page``."""
        runs = await self.list_runs(
            job_id=job_id, status=status, before_id=id_cursor(cursor), limit=limit + 1
        )
        return page_of(runs, limit, lambda run: run.id)

    async def audit_page(
        self, *, target: str | None, actor: str | None, cursor: str | None, limit: int
    ) -> Page[AuditRecord]:
        """Changes newest first, optionally to one target or by one actor, paged as
        ``job_page``."""
        records = await self._store.list_audit(
            target=target, actor=actor, before_id=id_cursor(cursor), limit=limit + 1
        )
        return page_of(records, limit, lambda record: record.id)

    @property
    def tasks_registered(self) -> frozenset[str]:
        """The python tasks this node has registered. While there are any, a python target put
        here must name one of them; without any, every task name is accepted."""
        return frozenset() if self._tasks is None else self._tasks.names()

    @property
    def tasks_served(self) -> frozenset[str]:
        """The python tasks some live node has registered, as of this node's last heartbeat."""
        return self.membership.tasks_served

    def missing_task(self, job: JobRecord) -> str | None:
        """The python task ``job`` needs that no live node has registered, as of this node's
        last heartbeat: its fires stay due until a node with the task joins. None when any
        node can call the job, or some live node has its task."""
        needed = job.spec.target.task_needed
        return None if needed is None or needed in self.membership.tasks_served else needed

    async def jobs_missing_a_task(self) -> dict[str, int]:
        """Per python task that no live node has, how many jobs need it (reads every job)."""
        served = self.membership.tasks_served
        counts = await self._store.count_jobs_by_task()
        return {task: n for task, n in counts.items() if task not in served}

    async def overview(self, *, limit: int = 10) -> Overview:
        """The installation at a glance (see ``Overview``): runs ended in the last hour and day
        by status, runs in flight and queued, failing and tripped jobs, the next fires (the
        first ``limit`` of each list), this node's lag and the live nodes. Read from summaries
        and index ranges only: as fast with a million jobs as with ten."""
        return await read_overview(
            self._store, self.telemetry, node_id=self.node_id, now_us=self.now_us(), limit=limit
        )

    async def job_run_counts(self, job_ids: Sequence[str]) -> dict[str, JobRunCounts]:
        """Each job's ended runs by status over its kept history, and how its last call ended
        (one read for them all, from the store's summaries)."""
        return await self._store.job_run_counts(job_ids)

    async def list_nodes(self) -> list[NodeInfo]:
        """The live nodes sharing the store, this one included."""
        return await self._store.list_nodes()

    async def unready(self) -> str | None:
        """Why this node cannot do its work now, or None when it can: the store must take a
        write (probed at most once a second) and the node's heartbeat must be current."""
        try:
            await self._store.check_writable()
        except StoreUnavailable as exc:
            return exc.detail
        if not self.membership.healthy:
            return "this node's heartbeat is overdue; other nodes may take its runs over"
        return None

    # Previews ----------------------------------------------------------------------------------

    def preview(self, spec: TriggerSpec, zone: ZoneInfo, count: int) -> list[datetime]:
        """The next ``count`` fire times of a trigger from now, without saving anything."""
        trigger = triggers.build(spec, zone)
        now = from_us(self._clock.now_us())
        first = trigger.first_fire(now)
        if first is None or first.year > LAST_YEAR:
            return []
        return [first.astimezone(zone), *triggers.preview(trigger, first, count - 1)]

    # Internals ---------------------------------------------------------------------------------

    def _actor(self, name: str) -> Actor:
        return Actor(name, self._clock.now_us())

    async def _update(
        self, current: JobRecord, spec: JobSpec, *, actor: str, action: str
    ) -> JobRecord:
        job = self._admission.schedule(current.id, spec, created_us=current.created_us)
        return await self._write_update(current, job, actor=actor, action=action)

    async def _write_update(
        self, current: JobRecord, job: JobRecord, *, actor: str, action: str
    ) -> JobRecord:
        if job.updated_us <= current.updated_us:  # keep versions strictly increasing
            job = replace(job, updated_us=current.updated_us + 1)
        await self._store.update_job(
            job,
            expected_updated_us=current.updated_us,
            by=Actor(actor, job.updated_us),
            action=action,
        )
        await self._changed(job)
        return job

    async def _changed(self, *changed: JobRecord) -> None:
        """Jobs were created, replaced or changed here: their new next fires may be sooner
        than the dispatcher would look, and fires of their old versions claimed ahead are
        revoked."""
        await self._revoke(*(job.id for job in changed))
        due = [job.next_run_us for job in changed if job.next_run_us is not None]
        if due:
            self._dispatcher.wake(min(due))

    async def _revoke(self, *job_ids: str) -> None:
        # Written before the change is answered, so a run queued next finds no stale "running".
        revoked = [self._dispatcher.revoke(job_id) for job_id in job_ids]
        if any(revoked):
            await self._dispatcher.flush()

    def _on_change(self, due_us: int | None, job_id: str | None) -> None:
        """Another process changed work (see ``Store.watch``)."""
        if job_id is not None:
            self._dispatcher.revoke(job_id)
        self._dispatcher.wake(due_us)
