"""The claim contract: the values the engine and a store exchange as due work is claimed and
its outcomes recorded. The store applies them; every decision in them is the engine's
(``ClaimPolicy``, ``Verdict``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from kairos.models import JobRecord, RunRecord, RunStatus

__all__ = [
    "Claim",
    "ClaimPolicy",
    "FinishedRun",
    "FirePlan",
    "PlannedRun",
    "QueuedRun",
    "Slots",
    "StartedRun",
    "Verdict",
]


class Slots(NamedTuple):
    """Room for one job's runs, as a claim sees it when it comes to the job."""

    running: int
    """The job's runs in flight anywhere before this pass."""
    started: int
    """The job's runs started in this pass so far."""
    budget: int
    """How many more runs (of any job) this pass may start."""


class QueuedRun(NamedTuple):
    """A queued (``scheduled``) run that is due, as ``Store.claim_due`` finds it."""

    id: int
    scheduled_for_us: int
    due_us: int
    attempt: int
    manual: bool


@dataclass(frozen=True, slots=True)
class PlannedRun:
    scheduled_for_us: int
    status: RunStatus
    """``RUNNING`` (start it now), ``SCHEDULED`` (queued: start it when a run of its job
    started in the same pass finishes), ``MISSED`` or ``SKIPPED``."""
    error: str | None = None


@dataclass(slots=True)
class FirePlan:
    runs: list[PlannedRun] = field(default_factory=list)
    next_fire_us: int | None = None
    next_run_us: int | None = None
    pause_reason: str | None = None
    """Set when the job's fires cannot be planned at all: pause it, saying this (the other
    fields are then empty)."""


class ClaimPolicy(Protocol):
    """What ``Store.claim_due`` asks about each piece of due work, and ``interrupt_running``
    and ``take_over`` about a breaker's probe they interrupt for good, inside their
    transactions. Pure decisions over a job, a clock reading and its ``Slots``: the store
    applies them."""

    def plan_due(self, job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
        """The fate of every fire of ``job`` due at ``now_us`` and the job's next fire."""
        ...

    def next_probe_us(self, job: JobRecord, now_us: int) -> int | None:
        """When the circuit breaker next probes ``job``, which it paused and whose probe was
        interrupted for good at ``now_us``; None: it stays paused until resumed by hand."""
        ...

    def admit_queued(self, run: QueuedRun, job: JobRecord, now_us: int, slots: Slots) -> PlannedRun:
        """Of a queued run that is due: start it (``RUNNING``), let it wait for a slot
        (``SCHEDULED``) or record it too late (``MISSED``, with the reason)."""
        ...


@dataclass(frozen=True, slots=True)
class StartedRun:
    """A run claimed by this node, recorded as ``running``: the caller must now call its target."""

    run: RunRecord
    job: JobRecord
    due_us: int
    """When to call the target: the fire's nominal time plus any jitter. It may lie a moment
    after the claim (see ``Store.claim_due``'s ``ahead_us``)."""


@dataclass(frozen=True, slots=True)
class Claim:
    started: list[StartedRun]
    recorded: dict[RunStatus, int]
    """How many ``missed`` / ``skipped`` runs the claim wrote besides the started ones."""
    exhausted: bool
    """True when the claim hit its limit: more work may be due right now."""
    next_due_us: int | None
    """When the next job or pending run falls due, as far as the store knows."""
    waiting_for_slot: bool = False
    """Queued runs (run now, retries, a catch-up backlog) are due but wait for a run of their
    job to finish (``max_instances``): look again when runs finish."""
    paused: dict[int, str] = field(default_factory=dict)
    """Of the ``finished`` runs, those whose failure made the circuit breaker pause their job:
    run id -> the pause reason."""


@dataclass(frozen=True, slots=True)
class FinishedRun:
    run_id: int
    status: RunStatus
    started_us: int | None
    """When the call began (None: it never did)."""
    finished_us: int
    http_status: int | None = None
    error: str | None = None
    response_excerpt: str | None = None
    retry_due_us: int | None = None
    """Queue the next attempt of the same fire, due then (the run failed and may be retried)."""
    verdict: Verdict | None = None
    """The fire is over (no retry follows): what it means for its job's circuit breaker."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a fire ended, for its job's circuit breaker. Sent only when it changes something:
    a failure while the breaker is on, a success after failures, or the end of a probe."""

    failed: bool
    limit: int | None
    """Failed fires in a row that trip the breaker; None: it is off."""
    probe: bool
    """The fire was the probe of a job the breaker paused."""
    decided_us: int
    """When the fire ended: the time of the pause or resume this verdict may cause."""
    next_probe_us: int | None
    """If the breaker opens (again): when the next probe fires; None: the job stays paused."""
    resume: tuple[int | None, int | None]
    """If the probe succeeded: the job's next (fire, due) times."""
    pause_reason: str | None
    """Of a failed fire: why its job is paused, should this verdict trip the breaker (or keep a
    probed job paused)."""
