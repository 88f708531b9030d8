"""storage: uploaded files in the database, shared by every node (issue 17)

Revision ID: r0124
Revises: r0127
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0124"
down_revision = "r0127"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_files",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(op.f("ix_stored_files_written_at"), "stored_files", ["written_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_stored_files_written_at"), table_name="stored_files")
    op.drop_table("stored_files")
