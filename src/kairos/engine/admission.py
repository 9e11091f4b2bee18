"""``Admission``: how a job spec a client sends becomes the record to store.

Every way in (create, put, a batch, an apply, a patch) admits a spec the same way: its python
target checked against this node's tasks, secrets it sends masked given their stored values,
its references to environment variables and secrets checked, its trigger built and its first
fire found.
"""

from __future__ import annotations

from kairos import triggers
from kairos.clock import Clock
from kairos.engine.options import EngineOptions
from kairos.engine.policies import Planner
from kairos.engine.secrets import Secrets
from kairos.errors import JobNotFound
from kairos.models import JobRecord, JobSpec, PythonTarget
from kairos.store import Store
from kairos.tasks import TaskRegistry

__all__ = ["Admission"]


class Admission:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        planner: Planner,
        options: EngineOptions,
        tasks: TaskRegistry | None,
        secrets: Secrets,
    ) -> None:
        self._store = store
        self._clock = clock
        self._planner = planner
        self._options = options
        self._tasks = tasks
        self._secrets = secrets

    async def admit(
        self,
        job_id: str,
        spec: JobSpec,
        *,
        new: bool = False,
        stored: JobSpec | None = None,
        target_changed: bool = True,
        created_us: int | None = None,
    ) -> JobRecord:
        """The record to store for ``spec`` (see ``schedule``); ``InvalidField`` naming what is
        wrong with it. Secrets it sends masked take their values from ``stored``, the job as it
        is (read here when not given; nothing for a ``new`` job). A python target is checked
        against this node's tasks only when it is ``target_changed``."""
        if target_changed:
            self.check_target(spec)
        if spec.sends_masks:
            spec = spec.keeping_secrets(stored or (None if new else await self._stored(job_id)))
        if spec.templates:
            await self._secrets.check(spec)
        return self.schedule(job_id, spec, created_us=created_us)

    def check_target(self, spec: JobSpec) -> None:
        """``InvalidField`` if the spec's python target names a task unknown here, or
        arguments that do not fit it. A node with no tasks at all (a plain ``kairos serve``
        beside an application's workers) cannot know which tasks the others have."""
        if (
            self._tasks is not None
            and self._tasks.names()
            and isinstance(spec.target, PythonTarget)
        ):
            self._tasks.check(spec.target)

    def schedule(self, job_id: str, spec: JobSpec, *, created_us: int | None) -> JobRecord:
        """The record of ``spec`` with its first fire from now; ``InvalidField`` for a trigger
        that does not hold. A spec that leaves the circuit breaker out gets the server's
        default."""
        if "max_consecutive_failures" not in spec.model_fields_set:
            limit = self._options.max_consecutive_failures
            spec = spec.model_copy(update={"max_consecutive_failures": limit})
        trigger = triggers.build(spec.trigger, spec.zone)
        now_us = self._clock.now_us()
        fire = None if spec.paused else self._planner.first_fire(spec, trigger, now_us)
        return JobRecord(
            job_id,
            spec,
            None if fire is None else fire[0],
            None if fire is None else fire[1],
            created_us if created_us is not None else now_us,
            now_us,
        )

    async def _stored(self, job_id: str) -> JobSpec | None:
        try:
            return (await self._store.get_job(job_id)).spec
        except JobNotFound:
            return None
