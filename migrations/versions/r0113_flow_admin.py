"""flow administration: the live version per flow, publications, two-person proposals

Revision ID: r0113
Revises: r0108
"""

import sqlalchemy as sa
from alembic import op

revision = "r0113"
down_revision = "r0108"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_live",
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["flow_versions.id"], name=op.f("fk_flow_live_version_id_flow_versions")
        ),
        sa.PrimaryKeyConstraint("flow", name=op.f("pk_flow_live")),
    )
    op.create_table(
        "flow_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("proposed_by", sa.String(length=64), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("base_version_id", sa.Integer(), nullable=True),
        sa.Column("diff", sa.JSON(), nullable=False),
        sa.Column("impact", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("migrate", sa.Boolean(), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("migration", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["base_version_id"], ["flow_versions.id"], name=op.f("fk_flow_proposals_base_version_id_flow_versions")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["flow_versions.id"], name=op.f("fk_flow_proposals_version_id_flow_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_proposals")),
    )
    op.create_index(op.f("ix_flow_proposals_sha256"), "flow_proposals", ["sha256"])
    op.create_index(op.f("ix_flow_proposals_status"), "flow_proposals", ["status"])
    op.create_table(
        "flow_publications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("previous_version_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["flow_versions.id"], name=op.f("fk_flow_publications_version_id_flow_versions")
        ),
        sa.ForeignKeyConstraint(
            ["previous_version_id"],
            ["flow_versions.id"],
            name=op.f("fk_flow_publications_previous_version_id_flow_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["flow_proposals.id"], name=op.f("fk_flow_publications_proposal_id_flow_proposals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_publications")),
    )
    op.create_index(op.f("ix_flow_publications_version_id"), "flow_publications", ["version_id"])
    # Until now the live version was the highest id of each flow: say so explicitly.
    op.execute(
        "INSERT INTO flow_live (flow, version_id, since) "
        "SELECT flow, MAX(id), CURRENT_TIMESTAMP FROM flow_versions GROUP BY flow"
    )
    op.execute(
        "INSERT INTO flow_publications (flow, version_id, by, approved_by, at) "
        "SELECT flow, id, published_by, '', published_at FROM flow_versions ORDER BY id"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_flow_publications_version_id"), table_name="flow_publications")
    op.drop_table("flow_publications")
    op.drop_index(op.f("ix_flow_proposals_status"), table_name="flow_proposals")
    op.drop_index(op.f("ix_flow_proposals_sha256"), table_name="flow_proposals")
    op.drop_table("flow_proposals")
    op.drop_table("flow_live")
