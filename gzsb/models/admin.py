"""What admins change: the action log, the live flow pointer, publications and proposals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gzsb.extensions import db
from gzsb.models.core import utcnow

# --- admin: accounts and 确认点 ---


class AdminAction(db.Model):
    """Append-only record of every admin change (who, when, what, to what), written in the
    change's transaction; personal fields in ``details`` are masked."""

    __tablename__ = "admin_actions"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(64))  # account:<id> or cli:<OS user>
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- admin: flow versions, publications, proposals (issue 11) ---


class FlowLive(db.Model):
    """Which version of a flow new applications start on: one row per flow name, moved by
    every publish (re-publishing an earlier version is how a flow is rolled back)."""

    __tablename__ = "flow_live"
    flow: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("flow_versions.id"))
    since: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)


class FlowPublication(db.Model):
    """Append-only: every time a version was made live, by whom and who approved it."""

    __tablename__ = "flow_publications"
    id: Mapped[int] = mapped_column(primary_key=True)
    flow: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("flow_versions.id"), index=True)
    by: Mapped[str] = mapped_column(String(64))  # account:<id> or cli:<name>
    approved_by: Mapped[str] = mapped_column(String(64), default="")
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("flow_proposals.id"), nullable=True)
    previous_version_id: Mapped[int | None] = mapped_column(ForeignKey("flow_versions.id"), nullable=True)
    at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)


class FlowProposal(db.Model):
    """A flow edit waiting for a second admin: published only when someone else approves it."""

    __tablename__ = "flow_proposals"
    id: Mapped[int] = mapped_column(primary_key=True)
    flow: Mapped[str] = mapped_column(String(64))
    yaml_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")
    # The live version the diff and impact were computed against, and what they said then.
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("flow_versions.id"), nullable=True)
    diff: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    impact: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="proposed", index=True)
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    migrate: Mapped[bool] = mapped_column(default=False)
    mapping: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("flow_versions.id"), nullable=True)
    migration: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the summary, when migrated


class FlowJob(db.Model):
    """A fleet-wide impact report or migration run by the worker, with the progress the
    workbench polls (any node can answer: it is a row, not a process's memory)."""

    __tablename__ = "flow_jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # impact | migrate
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    flow: Mapped[str] = mapped_column(String(64))
    yaml_text: Mapped[str] = mapped_column(Text, default="")  # the candidate of an impact report
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("flow_proposals.id"), nullable=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    done: Mapped[int] = mapped_column(default=0)
    total: Mapped[int] = mapped_column(default=0)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
