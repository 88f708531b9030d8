"""transparency log: leaves, nodes, checkpoints, cosignatures, verify runs; event data binding

Revision ID: r0111
Revises: r0113

Events already in the database keep ``changes = ''``: they were recorded in the
gzsb-history/1 encoding, before data binding, and verification names them as legacy
(re-seed a demo database with ``flask demo seed`` on a fresh instance).
"""

import sqlalchemy as sa
from alembic import op

revision = "r0111"
down_revision = "r0113"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("applications", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_runs")),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_checkpoints")),
    )
    op.create_index(op.f("ix_log_checkpoints_size"), "log_checkpoints", ["size"], unique=False)
    op.create_table(
        "log_leaves",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("application_uid", sa.String(length=32), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("flow_version_id", sa.Integer(), nullable=True),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_log_leaves")),
        sa.UniqueConstraint("flow_version_id", name=op.f("uq_log_leaves_flow_version_id")),
    )
    op.create_index(op.f("ix_log_leaves_application_uid"), "log_leaves", ["application_uid"], unique=False)
    op.create_table(
        "log_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_log_nodes")),
    )
    op.create_table(
        "log_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_state")),
    )
    op.create_table(
        "log_cosignatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=False),
        sa.Column("witness", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("cosigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"],
            ["log_checkpoints.id"],
            name=op.f("fk_log_cosignatures_checkpoint_id_log_checkpoints"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_cosignatures")),
    )
    op.create_index(op.f("ix_log_cosignatures_checkpoint_id"), "log_cosignatures", ["checkpoint_id"], unique=False)
    with op.batch_alter_table("history_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changes", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("log_index", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_history_events_unlogged", ["log_index", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("history_events", schema=None) as batch_op:
        batch_op.drop_index("ix_history_events_unlogged")
        batch_op.drop_column("log_index")
        batch_op.drop_column("changes")
    op.drop_index(op.f("ix_log_cosignatures_checkpoint_id"), table_name="log_cosignatures")
    op.drop_table("log_cosignatures")
    op.drop_table("log_state")
    op.drop_table("log_nodes")
    op.drop_index(op.f("ix_log_leaves_application_uid"), table_name="log_leaves")
    op.drop_table("log_leaves")
    op.drop_index(op.f("ix_log_checkpoints_size"), table_name="log_checkpoints")
    op.drop_table("log_checkpoints")
    op.drop_table("audit_runs")
