"""identity: face-match consent and jobs

Nothing to change in the schema: the consent, the uploads' uids and the match results
live in ``applications.data["identity"]``, the images in ``uploads`` (r0002), the face
jobs in ``outbox`` (kind "job", ``sent_at`` = when queued) and the retention deletions
in ``history_events`` (``purge_id_card``) plus ``uploads.deleted_at``. The revision keeps
the chain's place for identity.

Revision ID: r0003
Revises: r0002
"""

revision = "r0003"
down_revision = "r0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
