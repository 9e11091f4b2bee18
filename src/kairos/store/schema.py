"""The relational schema, in SQLAlchemy Core. Migrations in ``migrations/`` must produce exactly
this (a test compares them). Times are integer epoch microseconds: exact, portable, indexable."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.compiler import DDLCompiler

__all__ = [
    "CAN_CALL",
    "IS_QUEUED",
    "IS_RUNNING",
    "IS_TRIPPED",
    "api_keys",
    "audit",
    "changes",
    "job_stats",
    "job_tags",
    "jobs",
    "meta",
    "metadata",
    "node_tasks",
    "nodes",
    "run_counts",
    "runs",
    "secrets",
    "user_generations",
    "users",
]

metadata = MetaData()


@compiles(CreateTable, "mysql")
def _bytewise_table(create: CreateTable, compiler: DDLCompiler, **kw: object) -> str:
    """Every table of Kairos's on MySQL and MariaDB (here and in the migrations) compares text
    bytewise, as on SQLite, whatever the database's default collation (case-insensitive as a
    rule): ids that differ in case are different ids, and lists are ordered alike everywhere."""
    sql: str = compiler.visit_create_table(create, **kw)  # type: ignore[no-untyped-call]
    if create.element.name.startswith("kairos_"):
        sql = f"{sql.rstrip()} DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    return sql


# SQLite only auto-increments an INTEGER PRIMARY KEY; elsewhere a 64-bit key.
_RunId = BigInteger().with_variant(Integer(), "sqlite")
# Job ids compare bytewise on every backend (SQLite's BINARY; "C" on PostgreSQL, whatever the
# database's locale): lists are ordered alike, and the ids with a prefix are one range of the
# primary key. Every column holding a job id has it, as columns compared must agree.
_JobId = String(128).with_variant(String(128, collation="C"), "postgresql")

jobs = Table(
    "kairos_jobs",
    metadata,
    Column("id", _JobId, primary_key=True),
    Column("spec", Text, nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("next_fire_us", BigInteger, nullable=True),
    Column("next_run_us", BigInteger, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    # The circuit breaker: failed fires in a row, and why it paused the job (NULL: it did not).
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("pause_reason", Text, nullable=True),
    # A job's own run-history age limit (its spec's history.max_age); NULL: the server's.
    Column("history_max_age_us", BigInteger, nullable=True),
    # The task a node must have registered to call the job's target (a python target's); NULL:
    # any node can.
    Column("task", String(128), nullable=True),
    # The dispatcher's only scan: due jobs by due time. Paused and finished jobs hold NULL here,
    # but for a job the breaker paused, which holds the time of its probe fire.
    Index("ix_kairos_jobs_next_run_us", "next_run_us"),
)

# A job's tags (also in its spec), one row each: listing the jobs with a tag reads the primary key.
job_tags = Table(
    "kairos_job_tags",
    metadata,
    Column("tag", String(64), primary_key=True),
    Column("job_id", _JobId, primary_key=True),
    Index("ix_kairos_job_tags_job_id", "job_id"),
)

runs = Table(
    "kairos_runs",
    metadata,
    Column("id", _RunId, primary_key=True, autoincrement=True),
    Column("job_id", _JobId, nullable=False),
    Column("scheduled_for_us", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("manual", Boolean, nullable=False),
    Column("node_id", String(64), nullable=True),
    Column("started_us", BigInteger, nullable=True),
    Column("finished_us", BigInteger, nullable=True),
    Column("http_status", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("response_excerpt", Text, nullable=True),
    # When a queued (``scheduled``) run may start: its fire's time, or later for a retry.
    Column("due_us", BigInteger, nullable=True),
    # The ledger key: one row per fire and attempt, whatever races happen.
    UniqueConstraint("job_id", "scheduled_for_us", "attempt", name="uq_kairos_runs_fire"),
    Index("ix_kairos_runs_job_id_id", "job_id", "id"),
)
# Only queued and running runs are indexed by status, in partial indexes: they are the few the
# dispatcher looks for, and the history (nearly every row) then costs no index upkeep when a run
# finishes. (MariaDB has no partial indexes: there they index every run, and still serve: a run
# never queued holds no ``due_us``, and a job's runs are bounded by its history's limits; runs
# are counted by status off an index of its own there, below.)
# Queries that should use them compare ``status`` with these literals, not with a bound
# parameter: PostgreSQL's generic plans (of prepared statements) ignore parameter values, so only
# the query's own text can imply an index's WHERE.
IS_QUEUED = runs.c.status == literal_column("'scheduled'")
IS_RUNNING = runs.c.status == literal_column("'running'")
Index(
    "ix_kairos_runs_queued_due_us",
    runs.c.due_us,
    sqlite_where=IS_QUEUED,
    postgresql_where=IS_QUEUED,
)
Index(
    "ix_kairos_runs_running_job_id",
    runs.c.job_id,
    runs.c.node_id,
    sqlite_where=IS_RUNNING,
    postgresql_where=IS_RUNNING,
)
# MariaDB only: without partial indexes, counting the runs in flight or queued (the overview, the
# cluster page) would read the whole history. Elsewhere the partial indexes above answer them.
Index("ix_kairos_runs_status", runs.c.status).ddl_if(dialect="mysql")

# Jobs the circuit breaker paused (they hold a pause reason, and are paused): the overview counts
# them off this index. (On MariaDB, without partial indexes, it indexes every job by ``paused``:
# the count then reads the paused jobs.)
IS_TRIPPED = jobs.c.pause_reason.is_not(None)
Index(
    "ix_kairos_jobs_tripped",
    jobs.c.paused,
    jobs.c.id,
    sqlite_where=IS_TRIPPED,
    postgresql_where=IS_TRIPPED,
)

# Runs ended per minute (of their ``finished_us``), node (the one that recorded them; '' for a
# run that none did, as one skipped when its job was deleted) and status: written in the
# transaction that ends the runs, one row per node so that replicas never wait for each other's
# row. Minutes older than two days are purged.
run_counts = Table(
    "kairos_run_counts",
    metadata,
    Column("minute_us", BigInteger, primary_key=True),
    Column("node_id", String(64), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("ended", BigInteger, nullable=False),
)

# What each job's runs came to: its ended runs by status (kept in step as runs end and as
# retention purges them, in the same transactions) and how its last call ended. Keyed by job id,
# as the runs are: a job deleted without its history keeps its row (its last status cleared).
job_stats = Table(
    "kairos_job_stats",
    metadata,
    Column("job_id", _JobId, primary_key=True),
    Column("last_status", String(16), nullable=True),
    Column("last_ended_us", BigInteger, nullable=True),
    *(
        Column(status, BigInteger, nullable=False, server_default="0")
        for status in ("succeeded", "failed", "missed", "skipped", "interrupted", "cancelled")
    ),
    # Failing jobs (by their last status), the most recent failure first.
    Index("ix_kairos_job_stats_last_status", "last_status", "last_ended_us"),
)

meta = Table(
    "kairos_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Every live Kairos process. A node whose heartbeat is older than the lease is dead: another node
# takes over the runs it held. Heartbeats use the database's clock, so skew between hosts is moot.
nodes = Table(
    "kairos_nodes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("heartbeat_us", BigInteger, nullable=False),
)

# The python tasks each live node has registered: it claims the fires of jobs needing one of them.
node_tasks = Table(
    "kairos_node_tasks",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("task", String(128), primary_key=True),
)

# The change feed where the database cannot announce changes itself (MariaDB has no
# ``LISTEN``/``NOTIFY``): each change to work is a row, written in the change's own transaction,
# read by every node's follower (``kairos.store.changes``) and purged after a while. Empty on
# SQLite and PostgreSQL.
changes = Table(
    "kairos_changes",
    metadata,
    Column("id", _RunId, primary_key=True, autoincrement=True),
    Column("at_us", BigInteger, nullable=False),
    Column("due_us", BigInteger, nullable=True),
    Column("job_id", _JobId, nullable=True),
)

CAN_CALL = or_(
    jobs.c.task.is_(None),
    jobs.c.task.in_(select(node_tasks.c.task).where(node_tasks.c.node_id == bindparam("node"))),
)
"""The job's target can be called by node ``:node``: it needs no task, or one the node has."""

# People who sign in with a password (``POST /auth/token``). ``generation`` goes up with each
# password or scope change; a token names the generation it was issued for.
users = Table(
    "kairos_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("scopes", String(255), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

# The last generation each user name was given, kept when its user is removed: a user added
# again under that name goes on from there, so no token issued to an earlier user of the name is
# accepted. Every generation is taken from here, in the transaction of the change it is for.
user_generations = Table(
    "kairos_user_generations",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("generation", Integer, nullable=False),
)

# API keys for machines. Revoked keys stay (with ``revoked_us``) so the list shows them.
api_keys = Table(
    "kairos_api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", String(255), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("expires_us", BigInteger, nullable=True),
    Column("revoked_us", BigInteger, nullable=True),
)

# Named secrets that job specs refer to (``${secret:name}``), encrypted by the engine: the
# database never holds a value in clear.
secrets = Table(
    "kairos_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("ciphertext", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

# Every change: written in the transaction of the change itself, so neither exists without the
# other.
audit = Table(
    "kairos_audit",
    metadata,
    Column("id", _RunId, primary_key=True, autoincrement=True),
    Column("at_us", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", String(200), nullable=False),
    Column("detail", Text, nullable=True),
    # Old records are purged by id (oldest first), which needs no index of its own.
    Index("ix_kairos_audit_target_id", "target", "id"),
)
