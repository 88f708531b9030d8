"""regform: when the student first downloaded the 报名表 (issue 16: the 流程页面 says 已完成 only then)

Revision ID: r0121
Revises: r0124
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0121"
down_revision = "r0124"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registration_forms") as batch:
        batch.add_column(sa.Column("downloaded_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("registration_forms") as batch:
        batch.drop_column("downloaded_at")
