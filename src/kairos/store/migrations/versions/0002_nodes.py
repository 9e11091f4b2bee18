"""Cluster membership: nodes with heartbeats, and runs found by the node that holds them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kairos_nodes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("started_us", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_kairos_runs_node_id_status", "kairos_runs", ["node_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_kairos_runs_node_id_status", "kairos_runs")
    op.drop_table("kairos_nodes")
