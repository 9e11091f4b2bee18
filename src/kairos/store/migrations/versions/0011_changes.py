"""The change feed of databases that cannot announce changes themselves (MariaDB has no
``LISTEN``/``NOTIFY``): one row per change, read by every node. Empty on the others.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JobId = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "kairos_changes",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("due_us", sa.BigInteger(), nullable=True),
        sa.Column("job_id", _JobId, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("kairos_changes")
