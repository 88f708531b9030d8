"""账号申诉 (issue 16): the owner of an ID number that another account holds asks for it back.

A case keeps the appellant's ID number and mobile only encrypted (lookups by blind index),
its images in ``appeal_files`` (stored encrypted, with a retention deadline) and every step
in ``appeal_events`` (append-only, personal fields masked).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gzsb.extensions import db
from gzsb.models.core import new_uid, utcnow


class AppealCase(db.Model):
    """One appeal: draft (mobile verified, images not yet sent) → pending → approved / rejected."""

    __tablename__ = "appeal_cases"
    __table_args__ = (Index("ix_appeal_cases_status", "status", "submitted_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    # The number the appellant keeps (with the mobile it opens the status page).
    number: Mapped[str] = mapped_column(String(20), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    name: Mapped[str] = mapped_column(String(50))
    id_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_index: Mapped[str] = mapped_column(String(64), index=True)
    mobile_enc: Mapped[bytes] = mapped_column(LargeBinary)
    mobile_index: Mapped[str] = mapped_column(String(64), index=True)
    # The account that held the ID number when the case was opened, and its point (the
    # staff queue of that 确认点 sees the case; admins see every case).
    old_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    confirmation_point_id: Mapped[int | None] = mapped_column(ForeignKey("confirmation_points.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    due_on: Mapped[date | None] = mapped_column(Date, nullable=True)  # Beijing date promised
    decided_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    frozen_application_uid: Mapped[str] = mapped_column(String(32), default="")
    new_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)


class AppealFile(db.Model):
    """An image of a case (ID card front/back, the photo holding it): encrypted in storage."""

    __tablename__ = "appeal_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    case_id: Mapped[int] = mapped_column(ForeignKey("appeal_cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # id_front / id_back / id_holding
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))  # of the clean image, before encryption
    mimetype: Mapped[str] = mapped_column(String(32))
    size: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    delete_after: Mapped[datetime] = mapped_column(db.DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)


class AppealEvent(db.Model):
    """Append-only: every step of a case, who took it and when (personal fields masked)."""

    __tablename__ = "appeal_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("appeal_cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))  # appellant / account:<id> / system
    action: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
