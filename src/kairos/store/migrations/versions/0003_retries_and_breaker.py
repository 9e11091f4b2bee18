"""Retries, the circuit breaker and run retention: queued runs carry the time they may start
(a retry waits out its backoff); jobs count their failed fires in a row, say why the breaker
paused them, and hold their own run-history age limit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "kairos_jobs", sa.Column("failures", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column("kairos_jobs", sa.Column("pause_reason", sa.Text, nullable=True))
    op.add_column("kairos_jobs", sa.Column("history_max_age_us", sa.BigInteger, nullable=True))
    op.add_column("kairos_runs", sa.Column("due_us", sa.BigInteger, nullable=True))
    op.execute("UPDATE kairos_runs SET due_us = scheduled_for_us WHERE status = 'scheduled'")
    op.create_index("ix_kairos_runs_status_due_us", "kairos_runs", ["status", "due_us"])
    op.drop_index("ix_kairos_runs_status_scheduled_for_us", "kairos_runs")


def downgrade() -> None:
    op.create_index(
        "ix_kairos_runs_status_scheduled_for_us", "kairos_runs", ["status", "scheduled_for_us"]
    )
    op.drop_index("ix_kairos_runs_status_due_us", "kairos_runs")
    op.drop_column("kairos_runs", "due_us")
    op.drop_column("kairos_jobs", "history_max_age_us")
    op.drop_column("kairos_jobs", "pause_reason")
    op.drop_column("kairos_jobs", "failures")
