"""A user name's generations never repeat: the last one each name was given is kept when its user
is removed, and a user added again under the name goes on from there, so the tokens issued to
the earlier user are refused. Seeded with the generations of the users there are now.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kairos_user_generations",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO kairos_user_generations (name, generation)"
        " SELECT name, generation FROM kairos_users"
    )


def downgrade() -> None:
    op.drop_table("kairos_user_generations")
