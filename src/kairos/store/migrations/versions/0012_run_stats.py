"""Summaries of the run ledger, for the overview: runs ended per minute, node and status, and
each job's ended runs by status with how its last call ended; an index of tripped jobs. Built
from the runs already there.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_JobId = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")
_ENDED = ("succeeded", "failed", "missed", "skipped", "interrupted", "cancelled")
_CALLS = ("succeeded", "failed", "interrupted")
_MINUTE_US = 60_000_000
_KEPT_US = 48 * 3600 * 1_000_000


def upgrade() -> None:
    op.create_table(
        "kairos_run_counts",
        sa.Column("minute_us", sa.BigInteger(), primary_key=True),
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("ended", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "kairos_job_stats",
        sa.Column("job_id", _JobId, primary_key=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("last_ended_us", sa.BigInteger(), nullable=True),
        *(sa.Column(s, sa.BigInteger(), nullable=False, server_default="0") for s in _ENDED),
    )
    op.create_index(
        "ix_kairos_job_stats_last_status", "kairos_job_stats", ["last_status", "last_ended_us"]
    )
    tripped = sa.text("pause_reason IS NOT NULL")
    op.create_index(
        "ix_kairos_jobs_tripped",
        "kairos_jobs",
        ["paused", "id"],
        sqlite_where=tripped,
        postgresql_where=tripped,
    )
    _build_from_runs()


def _build_from_runs() -> None:
    """Fill the summaries from the runs there are (one pass over them, once)."""
    counts = ", ".join(f"SUM(CASE WHEN status = '{s}' THEN 1 ELSE 0 END)" for s in _ENDED)
    op.execute(
        f"INSERT INTO kairos_job_stats (job_id, {', '.join(_ENDED)}) "
        f"SELECT job_id, {counts} FROM kairos_runs WHERE status IN ({_quoted(_ENDED)}) "
        "GROUP BY job_id"
    )
    calls = _quoted(_CALLS)
    # Each job's last call: its newest run by id that ended with a call outcome. A job deleted
    # has none (its runs stay in the history, counted, but it is not failing now).
    last = (
        "SELECT r.job_id, r.status, r.finished_us FROM kairos_runs r JOIN ("
        f"SELECT job_id, MAX(id) AS id FROM kairos_runs WHERE status IN ({calls}) "
        "GROUP BY job_id) newest ON newest.id = r.id "
        "JOIN kairos_jobs j ON j.id = r.job_id"
    )
    rows = op.get_bind().execute(sa.text(last)).all()
    stats = sa.table(
        "kairos_job_stats",
        sa.column("job_id"),
        sa.column("last_status"),
        sa.column("last_ended_us"),
    )
    update = (
        sa.update(stats)
        .where(stats.c.job_id == sa.bindparam("b_job"))
        .values(last_status=sa.bindparam("b_status"), last_ended_us=sa.bindparam("b_ended"))
    )
    if rows:
        op.get_bind().execute(
            update, [{"b_job": j, "b_status": s, "b_ended": e} for j, s, e in rows]
        )
    since = time.time_ns() // 1000 - _KEPT_US
    minute = f"finished_us - finished_us % {_MINUTE_US}"
    op.execute(
        "INSERT INTO kairos_run_counts (minute_us, node_id, status, ended) "
        f"SELECT {minute}, COALESCE(node_id, ''), status, COUNT(*) FROM kairos_runs "
        f"WHERE finished_us >= {since} AND status IN ({_quoted(_ENDED)}) "
        f"GROUP BY {minute}, COALESCE(node_id, ''), status"
    )


def _quoted(words: tuple[str, ...]) -> str:
    return ", ".join(f"'{word}'" for word in words)


def downgrade() -> None:
    op.drop_index("ix_kairos_jobs_tripped", "kairos_jobs")
    op.drop_table("kairos_job_stats")
    op.drop_table("kairos_run_counts")
