"""ID-card retention (§2.9): once identity is settled plus a grace period, the worker
deletes the ID-card images, recording ``purge_id_card`` in the history first.

``gzsb.identity.service`` re-exports ``purge_id_cards`` (the worker imports it from there).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gzsb.adapters.storage import Storage
from gzsb.common.uploads import discard
from gzsb.errors import EventNotAvailable, ServiceError
from gzsb.identity.names import (
    FACE_CHECKING,
    IDENTITY_PENDING,
    IDENTITY_VERIFIED,
    MANUAL_IDENTITY,
    PURGE_ID_CARD,
)
from gzsb.models import Application, HistoryEvent, Timer, Upload
from gzsb.workflow.engine import Actor, Engine

log = logging.getLogger(__name__)

ID_CARD = "id_card"
RETENTION = Actor.system("retention")
CHECKING = FACE_CHECKING
# Entering identity_verified from these states settles identity (not: an expired order).
SETTLING_STATES = (FACE_CHECKING, MANUAL_IDENTITY)


def settled_at(session: Session, app: Application) -> datetime | None:
    """When identity was settled: the last entry into identity_verified by a face match or
    a staff approval (a returning expired order does not count)."""
    at = session.scalars(
        select(HistoryEvent.at)
        .where(
            HistoryEvent.application_id == app.id,
            HistoryEvent.to_state == IDENTITY_VERIFIED,
            HistoryEvent.from_state.in_(SETTLING_STATES),
        )
        .order_by(HistoryEvent.seq.desc())
        .limit(1)
    ).first()
    return datetime.fromisoformat(at).astimezone(UTC) if at else None


def purge_id_cards(
    session: Session, eng: Engine, storage: Storage, now: datetime, retention: timedelta, limit: int = 200
) -> int:
    """Delete the ID-card images of applications settled more than ``retention`` ago.

    The history records ``purge_id_card`` first; the files go after that commit. A run
    that dies in between leaves the event recorded and the files for the next run.
    """
    now = now.astimezone(UTC)
    rows = session.execute(
        select(Upload.application_id, Upload.id)
        .join(Application, Application.id == Upload.application_id)
        .where(
            Upload.kind == ID_CARD,
            Upload.deleted_at.is_(None),
            # Set on first sight below: images inside their grace period cost no more lookups.
            or_(Upload.delete_after.is_(None), Upload.delete_after <= now),
            Application.state.not_in((IDENTITY_PENDING, CHECKING, MANUAL_IDENTITY)),
        )
        .order_by(Upload.application_id, Upload.id)
    ).all()
    by_app: dict[int, list[int]] = {}
    for app_id, upload_id in rows:
        by_app.setdefault(app_id, []).append(upload_id)
    purged = 0
    for app_id, upload_ids in list(by_app.items())[:limit]:
        app = session.get(Application, app_id)
        if app is None:
            continue
        settled = settled_at(session, app)
        if settled is None or now < settled + retention:
            continue
        uploads = [u for u in (session.get(Upload, i) for i in upload_ids) if u is not None]
        for upload in uploads:
            upload.delete_after = settled + retention
        session.commit()
        recorded = bool(((app.data or {}).get("identity") or {}).get("id_card_purged"))
        if not recorded and not _record_purge(session, eng, app, uploads, settled, retention, now):
            continue
        for upload in uploads:
            discard(storage, upload, now)
        session.commit()
        purged += len(uploads)
        log.info("retention: deleted %d ID-card image(s) of application %s", len(uploads), app.uid)
    return purged


def _record_purge(
    session: Session,
    eng: Engine,
    app: Application,
    uploads: list[Upload],
    settled: datetime,
    retention: timedelta,
    now: datetime,
) -> bool:
    open_timer = session.scalars(
        select(Timer.id).where(Timer.application_id == app.id, Timer.fired_at.is_(None)).limit(1)
    ).first()
    if open_timer is not None:
        return False  # a self-loop would make the armed timer obsolete; try after it fired
    payload = {
        "uploads": [u.uid for u in uploads],
        "settled_at": settled.isoformat(),
        "retention_hours": retention.total_seconds() / 3600,
    }
    try:
        eng.fire(app.id, PURGE_ID_CARD, RETENTION, payload, expected_version=app.version, now=now)
    except EventNotAvailable:
        # An application on an older flow version without the event: the image still goes
        # (keeping it would break the retention promise); the log says why no event exists.
        log.warning("retention: application %s (state %s) has no purge_id_card event", app.uid, app.state)
    except ServiceError as exc:
        log.warning("retention: application %s not purged this time: %s", app.uid, exc)
        return False
    return True
