"""Index runs by status only while they are queued or running (partial indexes): finishing a run
no longer moves it within two indexes that covered the whole history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_QUEUED = sa.text("status = 'scheduled'")
_RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_index(
        "ix_kairos_runs_queued_due_us",
        "kairos_runs",
        ["due_us"],
        sqlite_where=_QUEUED,
        postgresql_where=_QUEUED,
    )
    op.create_index(
        "ix_kairos_runs_running_job_id",
        "kairos_runs",
        ["job_id", "node_id"],
        sqlite_where=_RUNNING,
        postgresql_where=_RUNNING,
    )
    op.drop_index("ix_kairos_runs_status_due_us", "kairos_runs")
    op.drop_index("ix_kairos_runs_node_id_status", "kairos_runs")


def downgrade() -> None:
    op.create_index("ix_kairos_runs_status_due_us", "kairos_runs", ["status", "due_us"])
    op.create_index("ix_kairos_runs_node_id_status", "kairos_runs", ["node_id", "status"])
    op.drop_index("ix_kairos_runs_running_job_id", "kairos_runs")
    op.drop_index("ix_kairos_runs_queued_due_us", "kairos_runs")
