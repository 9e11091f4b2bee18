"""Job tags: one row per job and tag, to list the jobs with a tag without reading every job.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kairos_job_tags",
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String(128), primary_key=True),
    )
    op.create_index("ix_kairos_job_tags_job_id", "kairos_job_tags", ["job_id"])


def downgrade() -> None:
    op.drop_table("kairos_job_tags")
