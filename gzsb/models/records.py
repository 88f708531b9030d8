"""Reference data and what students hand in: registry records, the catalogue, correction
requests, uploads, registration forms, face attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gzsb.extensions import db
from gzsb.models.core import new_uid, utcnow


class RegistryRecord(db.Model):
    """The 学籍/学历 registry (imported by admins; an HTTP client in production)."""

    __tablename__ = "registry_records"
    id: Mapped[int] = mapped_column(primary_key=True)
    id_number_index: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    school: Mapped[str] = mapped_column(String(100))
    major: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(20), default="专科")
    study_form: Mapped[str] = mapped_column(String(20), default="普通全日制")
    graduation_year: Mapped[int]
    photo: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Institution(db.Model):
    """A 招生院校 of the catalogue."""

    __tablename__ = "institutions"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100))

    majors: Mapped[list[Major]] = relationship(back_populates="institution", order_by="Major.code")


class Major(db.Model):
    """A 招生专业 offered by one institution."""

    __tablename__ = "majors"
    __table_args__ = (UniqueConstraint("institution_id", "code", name="uq_major_institution_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    places: Mapped[int] = mapped_column(default=0)

    institution: Mapped[Institution] = relationship(back_populates="majors")


class CorrectionRequest(db.Model):
    """A student's report that their 学籍/学历 record is wrong, for the registrar's queue."""

    __tablename__ = "correction_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    registry_record_id: Mapped[int | None] = mapped_column(ForeignKey("registry_records.id"), nullable=True)
    confirmation_point_id: Mapped[int | None] = mapped_column(ForeignKey("confirmation_points.id"), nullable=True)
    problem: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


# --- uploads ---


class Upload(db.Model):
    """A stored file of an application (identity images, materials): checked, re-encoded,
    kept under a random key; ``delete_after`` is when the retention job may delete it."""

    __tablename__ = "uploads"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # photo / id_card / material / …
    # A material's document (the flow's materials.documents key); "" for other kinds.
    slot: Mapped[str] = mapped_column(String(40), default="", server_default="")
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    mimetype: Mapped[str] = mapped_column(String(32))
    size: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    delete_after: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    # The one face the upload check found (box and landmarks on the detector's copy): the
    # face-match job cuts its chip from it instead of running the detector a second time.
    face: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


# --- registration forms ---


class RegistrationForm(db.Model):
    """The 报名表 of an approved application: its serial (assigned once) and the cached PDF.

    ``digest`` is the content digest the stored PDF was made from; when the application's
    form content no longer has that digest the PDF is stale and rendered again. ``issued``
    lists every digest a PDF was handed out for, so the verify page can tell a genuine but
    outdated paper (内容已变更) from a forged one (无效).
    """

    __tablename__ = "registration_forms"
    __table_args__ = (UniqueConstraint("year", "point_code", "number", name="uq_registration_forms_number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), unique=True)
    serial: Mapped[str] = mapped_column(String(32), unique=True)
    year: Mapped[int]
    point_code: Mapped[str] = mapped_column(String(16))
    number: Mapped[int]
    digest: Mapped[str] = mapped_column(String(64), default="")
    layout: Mapped[int] = mapped_column(default=0)
    # Loaded only when served: status checks on every page view need the digest alone.
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    rendered_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    render_ms: Mapped[int] = mapped_column(default=0)
    issued: Mapped[list[str]] = mapped_column(JSON, default=list)
    requested_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    requested_digest: Mapped[str] = mapped_column(String(64), default="")
    # The student's first download: the 流程页面 shows 下载报名表 已完成 only after it.
    downloaded_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)


# --- identity: face comparisons per ID number per day (issue 13) ---


class FaceAttemptDay(db.Model):
    """Face comparisons started by one ID number (its blind index) on one Beijing day.

    Raised with one INSERT … ON CONFLICT DO UPDATE … WHERE n < cap RETURNING statement, so
    parallel uploads can never pass the cap together.
    """

    __tablename__ = "face_attempt_days"
    id_number_index: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, Beijing time
    count: Mapped[int] = mapped_column(default=0)
