"""The store seam: where jobs, the run ledger and metadata live.

``Store`` is composed of one interface per role (jobs, the run ledger, its summaries, nodes,
accounts, secrets, the audit log), so that each can be read, implemented and tested on its own.
Every method is a single transaction: it either happens whole or not at all. A store decides
nothing about scheduling: the engine's decisions come in as values (``store.claims``:
``ClaimPolicy``, ``Verdict``) it applies atomically.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kairos.identity import Actor, ApiKeyRecord, AuditRecord, Scope, UserRecord
from kairos.models import JobRecord, JobState, RunRecord, RunStatus
from kairos.store.claims import Claim, ClaimPolicy, FinishedRun
from kairos.store.summaries import RunStats

__all__ = [
    "AccountStore",
    "AuditLog",
    "ChangeFn",
    "JobQuery",
    "JobStore",
    "NodeInfo",
    "NodeRegistry",
    "RecordImport",
    "RunLedger",
    "SecretRecord",
    "SecretStore",
    "Store",
]

ChangeFn = Callable[[int | None, str | None], None]
"""``on_change(due_us, job_id)``: see ``Store.watch``."""


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Which jobs ``Store.list_jobs`` lists, in which order, from where."""

    prefix: str | None = None
    """Only ids that start with this."""
    state: JobState | None = None
    tag: str | None = None
    by_next_run: bool = False
    """Soonest next run first, then the jobs without one by id; False: all by id."""
    after: tuple[int | None, str] | None = None
    """Where the previous page ended: its last job's ``(next_run_us, id)`` when ordered by next
    run, ``(None, id)`` when ordered by id."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: str
    hostname: str
    started_us: int
    heartbeat_age_us: int
    """How long ago, by the database's clock, the node last said it was alive."""
    running: int
    """Runs the node holds (``running`` rows with its id)."""
    tasks: frozenset[str] = frozenset()
    """The python tasks the node has registered."""


class JobStore(ABC):
    """Jobs: their specs, states and next fires. Every change to a job is one transaction with
    its audit record."""

    @abstractmethod
    async def insert_job(self, job: JobRecord, *, by: Actor | None = None) -> None:
        """Add a job; raise ``JobExists`` if its id is taken.

        Every method that changes a job takes ``by``: who made the change, recorded in the audit
        log in the same transaction (None: not recorded)."""

    @abstractmethod
    async def upsert_jobs(
        self, jobs: Sequence[JobRecord], *, by: Actor | None = None
    ) -> dict[str, int]:
        """Add or completely replace each job (ids must be distinct), keeping the ``created_us``
        of those that existed; all are written or none. Return each id's stored ``created_us``:
        equal to the record's own exactly when the job was created."""

    @abstractmethod
    async def apply_jobs(
        self,
        upserts: Sequence[JobRecord],
        deletes: Sequence[str],
        *,
        by: Actor,
        summary: dict[str, object],
    ) -> None:
        """In one transaction: add or replace ``upserts`` (as ``upsert_jobs``), delete the jobs
        ``deletes`` names (as ``delete_job``; one already gone is no error), and record one
        audit entry ``jobs.apply`` with ``summary`` as its detail instead of one per job."""

    @abstractmethod
    async def update_job(
        self,
        job: JobRecord,
        *,
        expected_updated_us: int,
        by: Actor | None = None,
        action: str = "job.update",
    ) -> None:
        """Replace a job only if it was not changed since ``expected_updated_us`` was read;
        raise ``JobNotFound`` if it is gone and ``Conflict`` if it changed meanwhile.
        ``action`` names the change in the audit log (``job.pause``, ``job.resume``...)."""

    @abstractmethod
    async def get_job(self, job_id: str) -> JobRecord:
        """Raise ``JobNotFound`` for an unknown id."""

    @abstractmethod
    async def list_jobs(self, query: JobQuery, limit: int) -> list[JobRecord]:
        """Up to ``limit`` jobs as ``query`` says. By id and by tag, pages are read from an
        index; a state filter or an id prefix may read further to fill a page."""

    @abstractmethod
    async def count_jobs(self) -> dict[JobState, int]:
        """How many jobs there are in each state (reads every job: not for hot paths)."""

    @abstractmethod
    async def count_jobs_by_task(self) -> dict[str, int]:
        """How many jobs need each python task (``JobSpec.target.task_needed``); tasks no job
        needs are left out (reads every job: not for hot paths)."""

    @abstractmethod
    async def delete_job(
        self, job_id: str, *, purge_runs: bool = False, by: Actor | None = None
    ) -> None:
        """Remove a job; its pending (``scheduled``) runs become ``skipped``; its history stays,
        or with ``purge_runs`` goes too (runs still in flight are left to finish). Raise
        ``JobNotFound`` for an unknown id."""


class RunLedger(ABC):
    """The run ledger: every fire as a run row, claimed exactly once, and its outcome."""

    @abstractmethod
    async def add_manual_run(
        self, job_id: str, scheduled_for_us: int, *, by: Actor | None = None
    ) -> RunRecord:
        """Queue a run outside the schedule as ``scheduled``; raise ``JobNotFound``."""

    @abstractmethod
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
        """Claim work due by ``now_us + ahead_us`` in one transaction.

        First it asks ``policy.admit_queued`` about each queued ``scheduled`` run due by
        ``now_us`` and starts it, leaves it waiting or records it ``missed``, as told. Then, for
        each job due (``next_run_us <= now_us + ahead_us``, oldest first; while other nodes
        claim too, a store may start a few pages in, so that they take different jobs), it asks
        ``policy.plan_due``, inserts the planned runs (queued ones as ``scheduled``) and
        advances the job, or pauses it if the plan says so, all in the same transaction, so a
        fire becomes a run row exactly once. At most ``limit`` runs start.
        Only work ``node_id`` can call is claimed (see ``heartbeat``): a job needing a task
        the node lacks stays due for another node.
        Claiming ahead lets one pass take a stretch of fires, each then called at its
        ``StartedRun.due_us``. ``finished`` outcomes are recorded first, as ``finish_runs``
        would: in the same transaction, so the counts the claim sees are current.
        """

    @abstractmethod
    async def finish_runs(self, node_id: str, finished: Sequence[FinishedRun]) -> dict[int, str]:
        """Record the outcome of runs in one transaction. Fenced: a run that is no longer
        ``running`` under ``node_id`` (another node took it over) is left as it is. A run with
        ``retry_due_us`` gets its next attempt queued, due then, in the same transaction, and a
        ``verdict`` moves its job's circuit breaker as it says: counts the failure and pauses the
        job when the count reaches the limit, resets the count on success, resumes the job or
        keeps it paused after a probe, with the verdict's reason and times. Return the runs
        whose failure paused their job, with the reason (run id -> reason)."""

    @abstractmethod
    async def interrupt_running(
        self, node_id: str | None, *, retries: int, policy: ClaimPolicy
    ) -> int:
        """Mark ``running`` runs (of ``node_id``, or of every node if None) ``interrupted``,
        and queue attempt n+1 of each (same scheduled time) while n <= ``retries``, if its job
        still exists. A job whose circuit breaker's probe is so interrupted for good gets its
        next probe at ``policy.next_probe_us``. Return how many were interrupted."""

    @abstractmethod
    async def cancel_run(self, run_id: int, *, by: Actor) -> RunRecord:
        """Stop a queued (``scheduled``) or ``running`` run: it becomes ``cancelled`` as of
        ``by.at_us``, its error naming who cancelled it, and is never retried. The node
        holding a running run learns of it from ``cancelled_among``; the outcome it records
        later is left out, as for a run taken over. Audited as ``run.cancel``. Return the run
        as it is now; ``RunNotFound``, or ``Conflict`` for a run that has already ended."""

    @abstractmethod
    async def cancelled_among(self, run_ids: Sequence[int]) -> set[int]:
        """Those of ``run_ids`` that are ``cancelled``."""

    @abstractmethod
    async def get_run(self, run_id: int) -> RunRecord:
        """Raise ``RunNotFound`` for an unknown id."""

    @abstractmethod
    async def list_runs(
        self,
        *,
        job_id: str | None,
        status: RunStatus | None,
        before_id: int | None,
        limit: int,
    ) -> list[RunRecord]:
        """Runs newest first (by id), optionally of one job or status, starting before
        ``before_id``."""

    async def newest_runs(self, job_ids: Sequence[str], limit: int) -> dict[str, list[RunRecord]]:
        """Each of ``job_ids`` with its newest ``limit`` runs, newest first (no runs, or an
        unknown job: an empty list). This asks ``list_runs`` once a job; a store that can read
        them all in one round trip does so."""
        return {
            job_id: await self.list_runs(job_id=job_id, status=None, before_id=None, limit=limit)
            for job_id in job_ids
        }

    @abstractmethod
    async def purge_runs(self, jobs: Sequence[tuple[str, int, int | None]]) -> int:
        """For each ``(job_id, keep, older_than_us)``, delete the job's finished runs older
        than its newest ``keep`` runs, and (unless None) those finished before
        ``older_than_us``. Return how many went."""

    @abstractmethod
    async def purge_expired_runs(self, older_than_us: int, limit: int) -> int:
        """Delete up to ``limit`` runs that finished before ``older_than_us``, but not those of
        jobs with their own age limit (``purge_runs`` applies theirs); return how many went.
        A store may go through its runs in parts, each call bounded in work however many runs
        there are: a call that deletes fewer than ``limit`` may leave expired runs for the next
        calls, which reach every one of them."""


class NodeRegistry(ABC):
    """The nodes sharing the store: their heartbeats, and the takeover of those gone silent."""

    @abstractmethod
    async def heartbeat(
        self, node_id: str, hostname: str, tasks: frozenset[str] = frozenset()
    ) -> None:
        """Say the node is alive now (registering it if it is not known), with the python
        tasks it has registered: from then on ``claim_due`` gives it the fires of jobs needing
        one of them (``JobSpec.target.task_needed``), and none of jobs needing another."""

    @abstractmethod
    async def deregister_node(self, node_id: str) -> None: ...

    @abstractmethod
    async def take_over(self, lease_us: int, *, retries: int, policy: ClaimPolicy) -> list[str]:
        """Declare nodes silent for longer than ``lease_us`` dead, interrupt the runs they held
        (retrying as ``interrupt_running`` does) and forget them. Return their ids. Safe to call
        from every node at once: each dead node is taken over by one."""

    @abstractmethod
    async def list_nodes(self) -> list[NodeInfo]: ...


class AccountStore(ABC):
    """Users and API keys; every change is one transaction with its audit record."""

    @abstractmethod
    async def add_user(
        self, name: str, password_hash: str, scopes: frozenset[Scope], *, by: Actor
    ) -> UserRecord:
        """Add a user, created as of ``by.at_us``; raise ``UserExists`` if the name is taken.

        Its generation, as every new generation, is one above the last the name was ever given,
        a removed user's included: a name's generations never repeat, so no token issued to an
        earlier user of the name is accepted."""

    @abstractmethod
    async def update_user(
        self,
        name: str,
        *,
        password_hash: str | None = None,
        scopes: frozenset[Scope] | None = None,
        by: Actor,
        action: str,
    ) -> UserRecord:
        """Set a user's hash or scopes or both (only what is given, so that two changes made at
        once keep each other) and give it a new generation; return the user as it is now.
        Raise ``UserNotFound``."""

    @abstractmethod
    async def get_user(self, name: str) -> UserRecord | None: ...

    @abstractmethod
    async def list_users(self) -> list[UserRecord]: ...

    @abstractmethod
    async def remove_user(self, name: str, *, by: Actor) -> None:
        """Raise ``UserNotFound``."""

    @abstractmethod
    async def add_api_key(self, key: ApiKeyRecord, *, by: Actor) -> None: ...

    @abstractmethod
    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    @abstractmethod
    async def list_api_keys(self) -> list[ApiKeyRecord]: ...

    @abstractmethod
    async def revoke_api_key(self, key_id: str, *, by: Actor) -> ApiKeyRecord:
        """Revoke a key as of ``by.at_us`` (a revoked key stays revoked as it was); raise
        ``ApiKeyNotFound``. Return the key as it is now."""


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """A named secret as the store keeps it: its value encrypted by the engine (the store
    never sees it in clear)."""

    name: str
    ciphertext: str
    created_us: int
    updated_us: int


class SecretStore(ABC):
    """Named secrets that job specs refer to (``${secret:name}``); every change is one
    transaction with its audit record (``secret.set``, ``secret.delete``: the name only)."""

    @abstractmethod
    async def put_secret(self, name: str, ciphertext: str, *, by: Actor) -> bool:
        """Add the secret or replace its value (keeping its ``created_us``), as of
        ``by.at_us``; return True when it was added."""

    @abstractmethod
    async def get_secret(self, name: str) -> SecretRecord | None: ...

    @abstractmethod
    async def list_secrets(self) -> list[SecretRecord]:
        """Every secret, by name."""

    @abstractmethod
    async def delete_secret(self, name: str, *, by: Actor) -> None:
        """Raise ``SecretNotFound``."""


class AuditLog(ABC):
    """Who changed what: written by the other roles' changes, read and aged out here."""

    @abstractmethod
    async def list_audit(
        self,
        *,
        target: str | None = None,
        actor: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Audit records newest first, optionally about one target or by one actor."""

    @abstractmethod
    async def purge_audit(self, older_than_us: int, limit: int) -> int:
        """Of the ``limit`` oldest audit records (by id), delete those made before
        ``older_than_us``; return how many went."""


class RecordImport(ABC):
    """Records written as another store kept them, for moving a whole installation from one
    database to another (``kairos db copy``); not for hot paths. Each call is one transaction
    over a batch: it writes no audit record, announces nothing to other processes, and
    overwrites nothing: a record whose key is taken makes it raise ``Conflict``, writing none
    of the batch."""

    @abstractmethod
    async def import_jobs(self, jobs: Sequence[JobRecord]) -> None:
        """Add jobs exactly as they are: next fire and run times, failures, pause reason,
        creation and change times."""

    @abstractmethod
    async def import_runs(self, runs: Sequence[RunRecord]) -> None:
        """Add runs under new ids, ascending in the order given (give them oldest first), each
        otherwise as it is; a run's fire (job, scheduled time, attempt) must be free. A
        ``running`` run counts as in flight on its node, as any other."""

    @abstractmethod
    async def import_users(self, users: Sequence[UserRecord]) -> None:
        """Add users as they are, generation included; the last generation each name was
        given becomes at least its user's, so the name's next generation is above it."""

    @abstractmethod
    async def import_api_keys(self, keys: Sequence[ApiKeyRecord]) -> None:
        """Add API keys as they are (revoked and expired ones too)."""

    @abstractmethod
    async def import_secrets(self, secrets: Sequence[SecretRecord]) -> None:
        """Add secrets with their ciphertext and times as they are."""

    @abstractmethod
    async def import_audit(self, records: Sequence[AuditRecord]) -> None:
        """Add audit records under new ids, ascending in the order given (oldest first),
        each otherwise as it is."""


class Store(
    JobStore,
    RunLedger,
    RunStats,
    NodeRegistry,
    AccountStore,
    SecretStore,
    AuditLog,
    RecordImport,
):
    """Persistence for everything Kairos keeps: the roles above over one database, plus its
    lifecycle, the change feed between processes and a little metadata. Implementations must be
    safe to share between tasks."""

    single_process: bool = False
    """True where only one Kairos process may use the database (one in memory): whatever it
    finds ``running`` at start was left by a dead process."""

    announces_changes: bool = True
    """False where ``watch`` hears nothing from the other processes sharing the database (a
    SQLite file): they learn of a change when they next claim work."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date (runs migrations). Raise
        ``StoreUnavailable`` with one line that names the database, says what is wrong with it
        and what to do."""

    @abstractmethod
    async def close(self) -> None: ...

    async def watch(self, on_change: ChangeFn) -> None:
        """Call ``on_change(due_us, job_id)`` when another process changes work: work falls due
        at ``due_us`` (None: look now), and job ``job_id`` (if not None) was changed or deleted,
        so its fires claimed ahead must not be called. A hint only, possibly late or lost:
        callers still poll. Single-process stores have no other process to hear from."""
        return None

    @abstractmethod
    async def check_writable(self) -> None:
        """Return if the store can be written now: a write that needs fresh space (as new runs
        do) can be made, and a short one committed. Raise ``StoreUnavailable`` saying why not
        (unreachable, full, corrupt, read-only). Probes at most once a second: callers at a
        higher rate share the last answer."""

    @abstractmethod
    async def get_meta(self, key: str) -> str | None: ...

    @abstractmethod
    async def set_meta_if_absent(self, key: str, value: str) -> str:
        """Store ``value`` under ``key`` unless a value is there; return the value kept."""
