"""staff console: reviews and materials (no schema change)

Decisions are history events and live in ``applications.data``; material photos are rows of
``uploads`` (r0002); 学籍 corrections use ``correction_requests`` (initial schema). This
revision keeps the chain's place for the staff console.

Revision ID: r0005
Revises: r0004
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "r0005"
down_revision = "r0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
