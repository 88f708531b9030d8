"""onsite: 现场确认 time slots and bookings; the document slot of a material upload (issue 16)

Revision ID: r0122
Revises: r0123
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0122"
down_revision = "r0123"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "onsite_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("point_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("booked >= 0 AND booked <= capacity", name="ck_onsite_slots_booked"),
        sa.ForeignKeyConstraint(
            ["point_id"], ["confirmation_points.id"], name=op.f("fk_onsite_slots_point_id_confirmation_points")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onsite_slots")),
        sa.UniqueConstraint("point_id", "starts_at", name="uq_onsite_slots_point_start"),
    )
    op.create_index(op.f("ix_onsite_slots_point_id"), "onsite_slots", ["point_id"], unique=False)
    op.create_table(
        "onsite_bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name=op.f("fk_onsite_bookings_application_id_applications")
        ),
        sa.ForeignKeyConstraint(["slot_id"], ["onsite_slots.id"], name=op.f("fk_onsite_bookings_slot_id_onsite_slots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onsite_bookings")),
        sa.UniqueConstraint("application_id", name=op.f("uq_onsite_bookings_application_id")),
    )
    op.create_index(op.f("ix_onsite_bookings_slot_id"), "onsite_bookings", ["slot_id"], unique=False)
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("slot", sa.String(length=40), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("slot")
    op.drop_index(op.f("ix_onsite_bookings_slot_id"), table_name="onsite_bookings")
    op.drop_table("onsite_bookings")
    op.drop_index(op.f("ix_onsite_slots_point_id"), table_name="onsite_slots")
    op.drop_table("onsite_slots")
