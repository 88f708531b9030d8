"""Retention of uploaded files: every kind has a deadline, withdrawn consent and deletion
requests are served, and files no live ``Upload`` row owns (a crash between writing the
file and committing its row) are removed after a grace period.

The ID-card images of settled applications keep their own path (``purge_id_cards`` in the
identity area: a history event first). The ``Upload`` row stays with ``deleted_at`` as the
record that a file existed and when it went.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.adapters.storage import Storage
from gzsb.appeals import files as appeal_files
from gzsb.common.uploads import discard
from gzsb.identity.names import FACE_CHECKING, IDENTITY_PENDING, MANUAL_IDENTITY, MATERIALS_REVIEW
from gzsb.models import Application, Upload

log = logging.getLogger(__name__)

# Where a job or a reviewer still needs the files, whatever their age.
IN_USE = {"photo": (FACE_CHECKING, MANUAL_IDENTITY), "id_card": (FACE_CHECKING, MANUAL_IDENTITY)}
MATERIALS_IN_REVIEW = (MATERIALS_REVIEW,)
# What a deletion request removes (the 证件照 is printed on the 报名表 and stays).
ON_REQUEST = ("id_card", "material")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def sweep(session: Session, storage: Storage, now: datetime, config: Mapping[str, Any]) -> dict[str, int]:
    """One pass of every rule; each commits its own deletions. Counts by rule."""
    counts = {
        "withdrawn": delete_withdrawn_face_images(session, storage, now),
        "expired": delete_expired(session, storage, now, config["UPLOAD_RETENTION_DAYS"]),
        "requested": serve_deletion_requests(session, storage, now),
        "orphans": delete_orphans(session, storage, now, timedelta(hours=float(config["ORPHAN_GRACE_HOURS"]))),
        "appeals": appeal_files.purge(session, storage, now, float(config["APPEAL_DRAFT_HOURS"])),
    }
    if any(counts.values()):
        log.info("retention: %s", ", ".join(f"{n} {rule}" for rule, n in counts.items()))
    return counts


def _live(session: Session, kinds: Iterable[str]) -> list[tuple[Upload, Application]]:
    rows = session.execute(
        select(Upload, Application)
        .join(Application, Application.id == Upload.application_id)
        .where(Upload.kind.in_(list(kinds)), Upload.deleted_at.is_(None))
        .order_by(Upload.id)
    ).all()
    return [(upload, app) for upload, app in rows]


def _discard_all(session: Session, storage: Storage, uploads: list[Upload], now: datetime, why: str) -> int:
    for upload in uploads:
        discard(storage, upload, now)
        log.info(
            "retention: deleted %s upload %s of application %d (%s)",
            upload.kind,
            upload.uid,
            upload.application_id,
            why,
        )
    session.commit()
    return len(uploads)


def delete_withdrawn_face_images(session: Session, storage: Storage, now: datetime) -> int:
    """The images a withdrawn face consent listed (the history recorded the withdrawal)."""
    doomed = []
    for upload, app in _live(session, ("photo", "id_card")):
        withdrawn = ((app.data or {}).get("identity") or {}).get("consent_withdrawn") or {}
        if upload.uid in (withdrawn.get("uploads") or []):
            doomed.append(upload)
    return _discard_all(session, storage, doomed, now, "face consent withdrawn")


def delete_expired(session: Session, storage: Storage, now: datetime, days: Mapping[str, float]) -> int:
    """Uploads older than their kind's deadline, unless a job or a reviewer needs them now.
    ID cards here are those of students who never settled identity (settled ones are
    purged, with a history event, by the identity tick)."""
    doomed = []
    for upload, app in _live(session, days):
        if app.state in IN_USE.get(upload.kind, ()) or (upload.kind == "material" and app.state in MATERIALS_IN_REVIEW):
            continue
        if upload.kind == "id_card" and app.state != IDENTITY_PENDING:
            continue
        if _utc(upload.created_at) + timedelta(days=float(days[upload.kind])) <= now:
            doomed.append(upload)
    return _discard_all(session, storage, doomed, now, "retention deadline")


def serve_deletion_requests(session: Session, storage: Storage, now: datetime) -> int:
    """What a recorded deletion request removes, once nothing in progress needs it."""
    doomed = []
    for upload, app in _live(session, ON_REQUEST):
        if not ((app.data or {}).get("privacy") or {}).get("deletion_request"):
            continue
        busy = IN_USE.get(upload.kind, ()) + (MATERIALS_IN_REVIEW if upload.kind == "material" else ())
        if app.state not in busy:
            doomed.append(upload)
    return _discard_all(session, storage, doomed, now, "deletion request")


def storage_prefixes(kinds: Iterable[str]) -> list[str]:
    """The key prefixes ``store_image`` uses for these kinds."""
    return [f"{kind.replace('_', '-')}/" for kind in kinds]


UPLOAD_KINDS = ("photo", "id_card", "material")


def delete_orphans(
    session: Session, storage: Storage, now: datetime, grace: timedelta, kinds: Iterable[str] = UPLOAD_KINDS
) -> int:
    """Stored files of upload kinds older than ``grace`` that no live Upload row owns."""
    removed = 0
    for prefix in storage_prefixes(kinds):
        for key, written in list(storage.listing(prefix)):
            if written + grace > now:
                continue
            owner = session.scalars(
                select(Upload.id).where(Upload.storage_key == key, Upload.deleted_at.is_(None))
            ).first()
            if owner is None and storage.delete(key):
                removed += 1
                log.info("retention: deleted orphaned file %s (written %s)", key, written.isoformat())
    return removed
