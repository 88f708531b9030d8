"""identity: the face the upload check found, reused by the face-match job (issue 13)

Revision ID: r0128
Revises: r0120
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0128"
down_revision = "r0120"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("face", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("face")
