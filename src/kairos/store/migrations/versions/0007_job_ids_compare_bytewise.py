"""On PostgreSQL, job ids use the "C" collation (byte order), as they compare on SQLite: listing
by id no longer depends on the database's locale, and a search by id prefix reads a range of the
primary key instead of every job. Rebuilds the indexes on job ids (no table is rewritten).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = [("kairos_jobs", "id"), ("kairos_job_tags", "job_id"), ("kairos_runs", "job_id")]


def upgrade() -> None:
    _collate(sa.String(128, collation="C"))


def downgrade() -> None:
    _collate(sa.String(128))


def _collate(type_: sa.String) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite compares text bytewise already
    for table, column in _COLUMNS:
        op.alter_column(table, column, type_=type_, existing_type=sa.String(128))
