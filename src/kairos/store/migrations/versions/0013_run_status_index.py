"""On MariaDB, runs indexed by status, so that the runs in flight and queued are counted without
reading the whole history (the other databases count them off their partial indexes). Building
it reads every run once.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "mysql":
        op.create_index("ix_kairos_runs_status", "kairos_runs", ["status"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "mysql":
        op.drop_index("ix_kairos_runs_status", "kairos_runs")
