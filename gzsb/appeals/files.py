"""The images of an appeal case (both sides of the ID card, a photo holding it).

They pass the upload checks of every image (``accept_image``: size cap before reading,
JPEG/PNG by content, pixel cap before decoding, re-encoded) and are stored encrypted
(AES-GCM with the data key, the storage key bound as associated data) under random keys.
Each has a deadline: ``file_max_days`` after the upload while the case is open, shortened at
the decision (``service.shorten_retention``); drafts never sent go after ``draft_hours``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.adapters.storage import Storage, StorageError
from gzsb.appeals.service import KINDS, Settings
from gzsb.common.beijing import as_utc
from gzsb.common.security import Vault
from gzsb.common.uploads import CleanImage
from gzsb.errors import NotFound
from gzsb.models import AppealCase, AppealFile

log = logging.getLogger(__name__)
PREFIX = "appeal/"


def live_files(session: Session, case: AppealCase) -> dict[str, AppealFile]:
    """The case's current image of each kind."""
    rows = session.scalars(
        select(AppealFile).where(AppealFile.case_id == case.id, AppealFile.deleted_at.is_(None)).order_by(AppealFile.id)
    )
    return {row.kind: row for row in rows}


def attach(
    session: Session,
    storage: Storage,
    vault: Vault,
    case: AppealCase,
    kind: str,
    image: CleanImage,
    now: datetime,
    settings: Settings,
) -> AppealFile:
    """Store one checked image (replacing the case's earlier one of that kind)."""
    if kind not in KINDS:
        raise ValueError(f"unknown appeal image kind {kind!r}")
    earlier = live_files(session, case).get(kind)
    key = f"{PREFIX}{case.uid}/{secrets.token_hex(16)}.bin"
    storage.put(key, vault.seal_bytes(image.data, key))
    row = AppealFile(
        case_id=case.id,
        kind=kind,
        storage_key=key,
        sha256=hashlib.sha256(image.data).hexdigest(),
        mimetype=image.mimetype,
        size=len(image.data),
        width=image.width,
        height=image.height,
        created_at=as_utc(now),
        delete_after=as_utc(now) + timedelta(days=settings.file_max_days),
    )
    session.add(row)
    if earlier is not None:
        _discard(storage, earlier, now)
    session.flush()
    return row


def read(session: Session, storage: Storage, vault: Vault, case: AppealCase, uid: str) -> tuple[AppealFile, bytes]:
    row = session.scalars(select(AppealFile).where(AppealFile.uid == uid[:40], AppealFile.case_id == case.id)).first()
    if row is None or row.deleted_at is not None:
        raise NotFound(f"no live appeal image {uid!r} in case {case.number}")
    try:
        return row, vault.open_bytes(storage.get(row.storage_key), row.storage_key)
    except StorageError:
        raise NotFound(f"appeal image {uid!r} is missing from storage") from None


def _discard(storage: Storage, row: AppealFile, now: datetime) -> None:
    storage.delete(row.storage_key)
    row.deleted_at = as_utc(now)


def purge(session: Session, storage: Storage, now: datetime, draft_hours: float) -> int:
    """Images past their deadline, and those of drafts never sent; commits. How many."""
    stale_draft = as_utc(now) - timedelta(hours=draft_hours)
    rows = session.execute(
        select(AppealFile, AppealCase.status, AppealCase.created_at)
        .join(AppealCase, AppealCase.id == AppealFile.case_id)
        .where(AppealFile.deleted_at.is_(None))
    ).all()
    doomed = [
        row
        for row, status, created in rows
        if as_utc(row.delete_after) <= as_utc(now) or (status == "draft" and as_utc(created) <= stale_draft)
    ]
    for row in doomed:
        _discard(storage, row, now)
        log.info("retention: deleted appeal image %s (case %d)", row.uid, row.case_id)
    session.commit()
    return len(doomed)
