"""registration form PDFs

Revision ID: r0006
Revises: r0005
"""

import sqlalchemy as sa
from alembic import op

revision = "r0006"
down_revision = "r0005"
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "registration_forms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=32), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("point_code", sa.String(length=16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("layout", sa.Integer(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        _when("rendered_at", nullable=True),
        sa.Column("render_ms", sa.Integer(), nullable=False),
        sa.Column("issued", sa.JSON(), nullable=False),
        _when("requested_at", nullable=True),
        sa.Column("requested_digest", sa.String(length=64), nullable=False),
        _when("failed_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        _when("created_at"),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_registration_forms_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registration_forms")),
        sa.UniqueConstraint("application_id", name=op.f("uq_registration_forms_application_id")),
        sa.UniqueConstraint("serial", name=op.f("uq_registration_forms_serial")),
        sa.UniqueConstraint("year", "point_code", "number", name="uq_registration_forms_number"),
    )


def downgrade() -> None:
    op.drop_table("registration_forms")
