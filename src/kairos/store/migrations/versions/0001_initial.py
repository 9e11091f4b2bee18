"""Jobs, the run ledger and metadata.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kairos_jobs",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("next_fire_us", sa.BigInteger, nullable=True),
        sa.Column("next_run_us", sa.BigInteger, nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_kairos_jobs_next_run_us", "kairos_jobs", ["next_run_us"])
    op.create_table(
        "kairos_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("scheduled_for_us", sa.BigInteger, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("manual", sa.Boolean, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("started_us", sa.BigInteger, nullable=True),
        sa.Column("finished_us", sa.BigInteger, nullable=True),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("response_excerpt", sa.Text, nullable=True),
        sa.UniqueConstraint("job_id", "scheduled_for_us", "attempt", name="uq_kairos_runs_fire"),
    )
    op.create_index("ix_kairos_runs_job_id_id", "kairos_runs", ["job_id", "id"])
    op.create_index(
        "ix_kairos_runs_status_scheduled_for_us", "kairos_runs", ["status", "scheduled_for_us"]
    )
    op.create_table(
        "kairos_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kairos_meta")
    op.drop_table("kairos_runs")
    op.drop_table("kairos_jobs")
