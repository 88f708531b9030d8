"""admin: fleet impact reports and migrations run by the worker, with progress (issue 11)

Revision ID: r0127
Revises: r0115
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0127"
down_revision = "r0115"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["proposal_id"], ["flow_proposals.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_flow_jobs_status", "flow_jobs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_flow_jobs_status", table_name="flow_jobs")
    op.drop_table("flow_jobs")
