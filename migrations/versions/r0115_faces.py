"""identity: face comparisons per ID number per day (issue 13)

Revision ID: r0115
Revises: r0111
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0115"
down_revision = "r0111"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "face_attempt_days",
        sa.Column("id_number_index", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id_number_index", "day"),
    )


def downgrade() -> None:
    op.drop_table("face_attempt_days")
