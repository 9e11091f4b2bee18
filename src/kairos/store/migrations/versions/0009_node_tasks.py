"""Python function targets: a job names the task a node must have to call it, and each node
lists the tasks it has, so that a node claims only the fires it can call.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("kairos_jobs", sa.Column("task", sa.String(128), nullable=True))
    op.create_table(
        "kairos_node_tasks",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("task", sa.String(128), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("kairos_node_tasks")
    op.drop_column("kairos_jobs", "task")
