"""The run ledger's summaries (``RunStats``): what the overview reads, kept by every store in the
transactions that end and purge runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from kairos.models import RunStatus

__all__ = [
    "CALL_OUTCOMES",
    "ENDED_STATUSES",
    "FAILING_STATUSES",
    "RUN_COUNTS_KEPT_US",
    "RUN_COUNT_MINUTE_US",
    "JobRunCounts",
    "RunStats",
    "RunSummary",
    "empty_counts",
    "minute_of",
]

ENDED_STATUSES = (
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.MISSED,
    RunStatus.SKIPPED,
    RunStatus.INTERRUPTED,
    RunStatus.CANCELLED,
)
"""The statuses a run ends with, in the order summaries list them."""
CALL_OUTCOMES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.INTERRUPTED})
"""The ended statuses of a run whose target was called: only these tell whether a job is
failing (a missed, skipped or cancelled run says nothing about its target)."""
FAILING_STATUSES = (RunStatus.FAILED, RunStatus.INTERRUPTED)
"""A job whose last call ended so is failing."""
RUN_COUNT_MINUTE_US = 60_000_000
"""Runs ended are counted per minute (of their ``finished_us``)."""
RUN_COUNTS_KEPT_US = 48 * 3600 * 1_000_000
"""How far back the counts of runs ended per minute go (older minutes are purged)."""


@dataclass(frozen=True, slots=True)
class JobRunCounts:
    """What a job's runs came to, kept up to date as runs end and as history is purged."""

    counts: dict[RunStatus, int]
    """The ended runs the ledger holds under the job's id, by status (every status of
    ``ENDED_STATUSES``, zero included): what ``list_runs`` of the job shows, less runs queued
    or in flight."""
    last_status: RunStatus | None = None
    """How the job's last call ended (one of ``CALL_OUTCOMES``); None: no call ended since the
    job was created (a job deleted and created again starts afresh)."""
    last_ended_us: int | None = None
    """When that call ended."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The run ledger and the jobs at a glance, as ``RunStats.run_summary`` reads them."""

    ended: list[dict[RunStatus, int]]
    """For each time asked about: the runs ended since its minute (of every node), by status
    (every status of ``ENDED_STATUSES``)."""
    running: int
    """Runs in flight, on every node."""
    queued: int
    """Queued (``scheduled``) runs: retries, runs now, runs waiting for a slot."""
    failing: int
    """Jobs whose last call failed (``FAILING_STATUSES``). A job deleted is not one, but for a
    run it had in flight that fails after the delete: a store may then count it until its id
    is used again."""
    failing_jobs: list[str]
    """The first of them, the most recent failure first."""
    tripped: int
    """Jobs the circuit breaker paused (``JobState.TRIPPED``)."""
    tripped_jobs: list[str]
    """The first of them, by id."""


class RunStats(ABC):
    """Summaries of the run ledger, kept by the transactions that end and purge runs (in the
    same transaction), so that reading them costs the same with ten runs or ten million: they
    are never computed by reading the runs themselves."""

    @abstractmethod
    async def run_summary(self, since_us: Sequence[int], limit: int) -> RunSummary:
        """Counts of runs ended since each of ``since_us`` (to the minute: every run ended in
        the minute of a time counts; at most the last ``RUN_COUNTS_KEPT_US`` are known), runs
        in flight and queued, failing and tripped jobs with the first ``limit`` of each. Each
        part reads a summary or a bounded range of an index."""

    @abstractmethod
    async def job_run_counts(self, job_ids: Sequence[str]) -> dict[str, JobRunCounts]:
        """What the runs of each of ``job_ids`` came to (a job with no ended run: zero counts,
        no last status)."""

    @abstractmethod
    async def purge_run_counts(self, older_than_us: int) -> None:
        """Forget the counts of runs ended in minutes before ``older_than_us``'s."""


def minute_of(at_us: int) -> int:
    """The start of the minute (``RUN_COUNT_MINUTE_US``) that ``at_us`` falls in."""
    return at_us - at_us % RUN_COUNT_MINUTE_US


def empty_counts() -> dict[RunStatus, int]:
    """A count of zero for each of ``ENDED_STATUSES``."""
    return dict.fromkeys(ENDED_STATUSES, 0)
