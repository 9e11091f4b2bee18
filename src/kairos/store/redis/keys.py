"""``Keys``: the name of every Redis key a ``RedisStore`` uses, all under one prefix, so that
several Kairos installations can share one Redis (``KAIROS_REDIS_PREFIX``).

Records are strings of JSON (one key per job, per run), found through sorted sets that are
the store's indexes: every listing reads a page of an index, never the keyspace.
"""

from __future__ import annotations

from kairos.models import RunStatus

__all__ = ["SCHEMA_VERSION", "Keys"]

SCHEMA_VERSION = 2
"""The layout of the keys below; ``RedisStore.open`` migrates an older one up to it."""


class Keys:
    def __init__(self, prefix: str) -> None:
        p = prefix
        self.prefix = p
        self.schema = f"{p}schema"
        """The layout's version (``SCHEMA_VERSION``)."""
        self.installation = f"{p}installation"
        """A random id written when the store is first opened: gone means the data is gone."""
        self.migrating = f"{p}migrating"
        """Held by the process moving the layout to a newer version."""
        self.meta = f"{p}meta"
        self.changes = f"{p}changes"
        """The pub/sub channel of ``Store.watch``."""
        self.job_ids = f"{p}jobs"
        """Every job id, score 0: in id order."""
        self.due = f"{p}due"
        """Job id by its next run's time: the claim's only scan."""
        self.run_seq = f"{p}run-seq"
        self.run_ids = f"{p}runs"
        self.queued = f"{p}queued"
        """Queued (``scheduled``) run ids by the time they fall due."""
        self.running_jobs = f"{p}running-jobs"
        """Job id -> its runs in flight."""
        self.nodes = f"{p}nodes"
        """Node id -> its host name, start time and tasks (JSON)."""
        self.beats = f"{p}beats"
        """Node id by its last heartbeat (by Redis's clock)."""
        self.holders = f"{p}holders"
        """Node ids that held runs (some may hold none now): where ``take_over`` looks for
        runs of nodes no longer registered."""
        self.users = f"{p}users"
        self.generations = f"{p}generations"
        self.api_keys = f"{p}api-keys"
        self.api_key_order = f"{p}api-key-order"
        self.secrets = f"{p}secrets"
        self.audit_seq = f"{p}audit-seq"
        self.audit = f"{p}audit"
        self.audit_ids = f"{p}audit-ids"
        self.ended_minutes = f"{p}ended-minutes"
        """``<minute_us>:<status>`` -> runs ended in that minute (see ``redis/stats.py``)."""
        self.failing = f"{p}failing"
        """Job id by when its last call failed, of the jobs whose last call failed."""
        self.tripped = f"{p}tripped"
        """The ids of the jobs the circuit breaker paused, score 0."""

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def tag(self, tag: str) -> str:
        return f"{self.prefix}tag:{tag}"

    def run(self, run_id: int | str) -> str:
        return f"{self.prefix}run:{run_id}"

    def job_runs(self, job_id: str) -> str:
        return f"{self.prefix}job-runs:{job_id}"

    def fires(self, job_id: str) -> str:
        """The job's ledger: ``<scheduled_for_us>:<attempt>`` -> run id, one run per fire."""
        return f"{self.prefix}fires:{job_id}"

    def status(self, status: RunStatus | str) -> str:
        return f"{self.prefix}status:{status if isinstance(status, str) else status.value}"

    def running(self, node_id: str) -> str:
        """The ids of the runs ``node_id`` holds."""
        return f"{self.prefix}running:{node_id}"

    def families(self) -> list[str]:
        """The start of the key names of jobs, runs, jobs' runs, fires, statuses and jobs'
        counts, in this order: for the scripts that name records' keys themselves."""
        return [
            self.job(""),
            self.run(""),
            self.job_runs(""),
            self.fires(""),
            self.status(""),
            self.job_stats(""),
        ]

    def job_stats(self, job_id: str) -> str:
        """The job's ended runs by status, and how its last call ended."""
        return f"{self.prefix}job-stats:{job_id}"

    def audit_target(self, target: str) -> str:
        return f"{self.prefix}audit-target:{target}"

    def audit_actor(self, actor: str) -> str:
        return f"{self.prefix}audit-actor:{actor}"
