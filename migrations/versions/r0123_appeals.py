"""账号申诉: appeal cases, their encrypted images and their events (issue 16)

Revision ID: r0123
Revises: r0121
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0123"
down_revision = "r0121"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appeal_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("id_number_enc", sa.LargeBinary(), nullable=False),
        sa.Column("id_number_index", sa.String(length=64), nullable=False),
        sa.Column("mobile_enc", sa.LargeBinary(), nullable=False),
        sa.Column("mobile_index", sa.String(length=64), nullable=False),
        sa.Column("old_account_id", sa.Integer(), nullable=True),
        sa.Column("confirmation_point_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("frozen_application_uid", sa.String(length=32), nullable=False),
        sa.Column("new_account_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["old_account_id"], ["accounts.id"], name=op.f("fk_appeal_cases_old_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["new_account_id"], ["accounts.id"], name=op.f("fk_appeal_cases_new_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["confirmation_point_id"],
            ["confirmation_points.id"],
            name=op.f("fk_appeal_cases_confirmation_point_id_confirmation_points"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeal_cases")),
        sa.UniqueConstraint("uid", name=op.f("uq_appeal_cases_uid")),
        sa.UniqueConstraint("number", name=op.f("uq_appeal_cases_number")),
    )
    op.create_index(op.f("ix_appeal_cases_id_number_index"), "appeal_cases", ["id_number_index"], unique=False)
    op.create_index(op.f("ix_appeal_cases_mobile_index"), "appeal_cases", ["mobile_index"], unique=False)
    op.create_index("ix_appeal_cases_status", "appeal_cases", ["status", "submitted_at"], unique=False)
    op.create_table(
        "appeal_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("mimetype", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delete_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["appeal_cases.id"], name=op.f("fk_appeal_files_case_id_appeal_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeal_files")),
        sa.UniqueConstraint("uid", name=op.f("uq_appeal_files_uid")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_appeal_files_storage_key")),
    )
    op.create_index(op.f("ix_appeal_files_case_id"), "appeal_files", ["case_id"], unique=False)
    op.create_table(
        "appeal_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["appeal_cases.id"], name=op.f("fk_appeal_events_case_id_appeal_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeal_events")),
    )
    op.create_index(op.f("ix_appeal_events_case_id"), "appeal_events", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_appeal_events_case_id"), table_name="appeal_events")
    op.drop_table("appeal_events")
    op.drop_index(op.f("ix_appeal_files_case_id"), table_name="appeal_files")
    op.drop_table("appeal_files")
    op.drop_index("ix_appeal_cases_status", table_name="appeal_cases")
    op.drop_index(op.f("ix_appeal_cases_mobile_index"), table_name="appeal_cases")
    op.drop_index(op.f("ix_appeal_cases_id_number_index"), table_name="appeal_cases")
    op.drop_table("appeal_cases")
