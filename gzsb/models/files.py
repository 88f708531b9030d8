"""Uploaded files kept in the database (STORAGE_BACKEND=database): every app node and
worker reads the same bytes, with no file server to run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from gzsb.extensions import db
from gzsb.models.core import utcnow


class StoredFile(db.Model):
    """One file by its storage key. Whole files in one bytea value: uploads are capped at a
    few megabytes (UPLOAD_MAX_BYTES), far below PostgreSQL's 1 GB per value, so chunks or
    large objects would only add bookkeeping."""

    __tablename__ = "stored_files"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column()
    written_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow, index=True)
