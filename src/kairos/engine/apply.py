"""Applying a set of job documents (jobs as code): what would change, decided before anything is
written, so that a dry run and the real thing agree."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from kairos.errors import InvalidField, JobNotFound
from kairos.models import JobRecord, JobSpec
from kairos.store import JobQuery, Store

__all__ = ["ApplyPlan", "changed_fields", "plan_apply"]

Prepare = Callable[[str, JobSpec], Awaitable[JobRecord]]
"""A document's record as it would be stored (secrets it masks restored, its first fire
found), or ``InvalidField``."""

_YIELD_EVERY = 100
_PAGE = 1000


@dataclass
class ApplyPlan:
    """What applying documents does to the jobs: ids created, changed (with the top-level
    fields that change), left unchanged, and deleted (pruned)."""

    created: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """The audit log's detail: every id, by what happens to it."""
        return {
            "created": self.created,
            "changed": self.changed,
            "unchanged": len(self.unchanged),
            "deleted": self.deleted,
        }


def changed_fields(stored: JobSpec, wanted: JobSpec) -> list[str]:
    """The top-level fields of a job's spec that applying ``wanted`` over ``stored`` changes
    (secrets compared as stored: ``wanted`` has been given the stored ones it masks)."""
    before = stored.model_dump(mode="json")
    after = wanted.model_dump(mode="json")
    return sorted(
        name for name in after.keys() | before.keys() if before.get(name) != after.get(name)
    )


async def plan_apply(
    store: Store,
    documents: Sequence[tuple[str, JobSpec]],
    prepare: Prepare,
    prune_tag: str | None,
) -> tuple[ApplyPlan, list[JobRecord]]:
    """What applying ``documents`` does, and the records to write (created and changed)."""
    plan = ApplyPlan()
    wanted: list[JobRecord] = []
    for index, (job_id, spec) in enumerate(documents):
        if index and index % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # let due fires and other requests through meanwhile
        try:
            record = await prepare(job_id, spec)
        except InvalidField as exc:
            raise InvalidField(["jobs", index, *exc.loc], exc.message) from None
        try:
            fields = changed_fields((await store.get_job(job_id)).spec, record.spec)
        except JobNotFound:
            plan.created.append(job_id)
            wanted.append(record)
            continue
        if fields:
            plan.changed[job_id] = fields
            wanted.append(record)
        else:
            plan.unchanged.append(job_id)
    if prune_tag is not None:
        named = {job_id for job_id, _ in documents}
        plan.deleted = [i for i in await _ids_tagged(store, prune_tag) if i not in named]
    return plan, wanted


async def _ids_tagged(store: Store, tag: str) -> list[str]:
    ids: list[str] = []
    after: tuple[int | None, str] | None = None
    while True:
        page = await store.list_jobs(JobQuery(tag=tag, after=after), _PAGE)
        ids += [job.id for job in page]
        if len(page) < _PAGE:
            return ids
        after = (None, page[-1].id)
