"""The 确认点 staff console's queries and decisions.

Three queues of one confirmation point: materials to review (``materials_review``), manual
identity checks (``manual_identity``) and open 学籍/学历 correction requests. Waiting time
is measured from when the application entered its state (the history event that moved it
there) or, for a correction request, from when it was filed.

Every object a staff member opens is looked up together with their confirmation point:
another point's applicant, upload or request is a 404, as if it did not exist. Decisions go
through the engine (one history event each) with the version the staff member saw, so two
staff deciding the same item cannot both succeed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from gzsb.common.beijing import as_utc
from gzsb.common.security import basic_info_of
from gzsb.errors import InvalidInput, NotFound
from gzsb.identity import names as identity_names
from gzsb.identity.service import OUTCOMES as OUTCOMES  # the identity queue's filter, for the views
from gzsb.identity.service import queue_outcome
from gzsb.models import Account, Application, ConfirmationPoint, CorrectionRequest, HistoryEvent, Upload
from gzsb.payments import names as payment_names
from gzsb.staff.names import (
    APPROVE_IDENTITY,
    APPROVE_MATERIALS,
    IDENTITY_QUEUE,
    MATERIALS_QUEUE,
    REJECT_IDENTITY,
    REJECT_MATERIALS,
    RESOLVE_XUEJI_CORRECTION,
)
from gzsb.staff.steps import required_documents
from gzsb.workflow.engine import Actor, Engine, Fired
from gzsb.workflow.spec import FlowSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Queue:
    key: str
    title: str
    hint: str
    state: str | None = None  # None: the correction requests (a table, not a state)
    approve: str = ""
    reject: str = ""
    approve_label: str = "通过"
    reject_label: str = "不通过"
    reasons: tuple[str, ...] = ()


QUEUES: dict[str, Queue] = {
    "materials": Queue(
        "materials",
        "材料审核",
        "已缴费、需确认点审核材料的考生（特殊考生类别或未查到学籍/学历）",
        state=MATERIALS_QUEUE,
        approve=APPROVE_MATERIALS,
        reject=REJECT_MATERIALS,
        approve_label="审核通过",
        reject_label="审核不通过",
        reasons=("材料不清晰", "材料不完整", "材料与本人信息不符", "材料与考生类别不符", "材料已过期或无效"),
    ),
    "identity": Queue(
        "identity",
        "人工身份认证",
        "人脸比对在复核区间、不一致或申请人工认证的考生",
        state=IDENTITY_QUEUE,
        approve=APPROVE_IDENTITY,
        reject=REJECT_IDENTITY,
        approve_label="认证通过",
        reject_label="认证不通过",
        reasons=("照片非本人", "证件照不符合要求", "身份证照片不清晰", "身份证信息与报名信息不符"),
    ),
    "corrections": Queue(
        "corrections",
        "学籍/学历更正申请",
        "考生报告学籍/学历信息有误（信息有误）",
        approve="accepted",
        reject="rejected",
        approve_label="同意更正",
        reject_label="不予更正",
        reasons=("证明材料不足", "证明材料不清晰", "学籍/学历信息无误，无需更正"),
    ),
}
CORRECTION_EVENT = RESOLVE_XUEJI_CORRECTION
# System events carry no label in the flow (nobody clicks them); how staff read them.
SYSTEM_EVENTS = {
    identity_names.FACE_MATCHED: "人脸比对一致",
    identity_names.FACE_REVIEW: "人脸比对待人工复核",
    identity_names.FACE_MISMATCH: "人脸比对不一致",
    identity_names.FACE_CHECK_FAILED: "人脸比对失败",
    payment_names.PAYMENT_SUCCEEDED: "支付成功",
    payment_names.PAYMENT_EXPIRED: "订单超时未支付",
    identity_names.PURGE_ID_CARD: "删除身份证照片（到期）",
}
NEED_REASON = "请选择或填写不通过原因"
OTHER_POINT = "no such item at this confirmation point"


def staff_actor(account: Account) -> Actor:
    return Actor(f"account:{account.id}", "staff")


def waited(since: datetime | None, now: datetime) -> str:
    """How long something has waited, in Chinese (分钟 / 小时 / 天)."""
    if since is None:
        return ""
    minutes = max(int((as_utc(now) - as_utc(since)).total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes}分钟"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}小时{minutes}分钟" if minutes else f"{hours}小时"
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时" if hours else f"{days}天"


def _parse_at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


# ------------------------------------------------------------------------------ queues


def _in_state(point_id: int, state: str) -> Any:
    """(application id, the seq that entered ``state``) for the point's applications in it."""
    ids = select(Application.id).where(Application.state == state, Application.confirmation_point_id == point_id)
    return (
        select(HistoryEvent.application_id, func.max(HistoryEvent.seq).label("seq"))
        .where(
            HistoryEvent.application_id.in_(ids),
            HistoryEvent.to_state == state,
            HistoryEvent.from_state != state,
        )
        .group_by(HistoryEvent.application_id)
        .subquery()
    )


def _state_rows(session: Session, point_id: int, state: str, limit: int | None) -> list[tuple[Application, str]]:
    entered = _in_state(point_id, state)
    query = (
        select(Application, HistoryEvent.at)
        .join(entered, entered.c.application_id == Application.id)
        .join(HistoryEvent, and_(HistoryEvent.application_id == Application.id, HistoryEvent.seq == entered.c.seq))
        .where(Application.state == state)
        .order_by(HistoryEvent.at, Application.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [(app, at) for app, at in session.execute(query)]


def _open_corrections(point_id: int) -> Any:
    return (
        select(CorrectionRequest, Application)
        .join(Application, Application.id == CorrectionRequest.application_id)
        .where(CorrectionRequest.status == "open", Application.confirmation_point_id == point_id)
    )


def summary(session: Session, account: Account, now: datetime) -> list[dict[str, Any]]:
    """The dashboard: each queue with its count and its oldest waiting time."""
    point_id = account.confirmation_point_id
    out = []
    for queue in QUEUES.values():
        count, oldest = 0, None
        if point_id is not None and queue.state is not None:
            entered = _in_state(point_id, queue.state)
            count, first = session.execute(
                select(func.count(), func.min(HistoryEvent.at))
                .select_from(entered)
                .join(
                    HistoryEvent,
                    and_(HistoryEvent.application_id == entered.c.application_id, HistoryEvent.seq == entered.c.seq),
                )
            ).one()
            oldest = _parse_at(first)
        elif point_id is not None:
            sub = _open_corrections(point_id).subquery()
            count, first = session.execute(select(func.count(), func.min(sub.c.created_at))).one()
            oldest = as_utc(first) if isinstance(first, datetime) else _parse_at(first)
        out.append({"queue": queue, "count": count, "oldest": oldest, "waited": waited(oldest, now) if count else ""})
    return out


def queue_items(
    session: Session, account: Account, queue: Queue, now: datetime, outcome: str = ""
) -> list[dict[str, Any]]:
    """The queue's items, oldest first, with what a list row shows; the identity queue can
    be narrowed to one outcome (review band, mismatch, no ID card, requested)."""
    point_id = account.confirmation_point_id
    if point_id is None:
        return []
    items = []
    if queue.state is not None:
        for app, at in _state_rows(session, point_id, queue.state, limit=500):
            row = _row(app, _parse_at(at), now, url_id=app.uid)
            if queue.key == "identity":
                row["outcome"] = queue_outcome(app.data)
                if outcome and row["outcome"] != outcome:
                    continue
            items.append(row)
    else:
        rows = session.execute(_open_corrections(point_id).order_by(CorrectionRequest.created_at, CorrectionRequest.id))
        for request, app in rows:
            row = _row(app, as_utc(request.created_at), now, url_id=str(request.id))
            row["problem"] = request.problem
            items.append(row)
    return items


def _row(app: Application, since: datetime | None, now: datetime, *, url_id: str) -> dict[str, Any]:
    info = basic_info_of(app.data)
    return {
        "id": url_id,
        "uid": app.uid,
        "name": info.get("name") or app.account.name,
        "id_number": info.get("id_number", ""),
        "category": info.get("category", ""),
        "since": since,
        "waited": waited(since, now),
    }


# --------------------------------------------------------------------- single items


def application_for(session: Session, account: Account, uid: str) -> Application:
    """An application of the staff member's confirmation point (404 for any other)."""
    app = session.scalars(select(Application).where(Application.uid == uid)).first()
    if (
        app is None
        or account.confirmation_point_id is None
        or app.confirmation_point_id != account.confirmation_point_id
    ):
        raise NotFound(f"{OTHER_POINT}: application {uid!r} for staff {account.id}")
    return app


def correction_for(session: Session, account: Account, request_id: int) -> tuple[CorrectionRequest, Application]:
    """A correction request whose applicant belongs to the staff member's point (else 404)."""
    request = session.get(CorrectionRequest, request_id)
    app = session.get(Application, request.application_id) if request is not None else None
    if (
        request is None
        or app is None
        or account.confirmation_point_id is None
        or app.confirmation_point_id != account.confirmation_point_id
    ):
        raise NotFound(f"{OTHER_POINT}: correction request {request_id} for staff {account.id}")
    return request, app


def upload_of(session: Session, app: Application, uid: str) -> Upload:
    """A live upload of this application (the caller has checked the application)."""
    upload = session.scalars(
        select(Upload).where(Upload.uid == uid, Upload.application_id == app.id, Upload.deleted_at.is_(None))
    ).first()
    if upload is None:
        raise NotFound(f"no upload {uid!r} in application {app.uid}")
    return upload


def queue_of(app: Application) -> Queue | None:
    """The decision queue the application is waiting in now (None: nothing to decide)."""
    return next((q for q in QUEUES.values() if q.state is not None and q.state == app.state), None)


def applicant_facts(session: Session, app: Application, flow: FlowSpec) -> dict[str, Any]:
    """What an item page shows of the applicant (the template masks ID number and mobile)."""
    data = app.data or {}
    info = basic_info_of(data)
    point = session.get(ConfirmationPoint, app.confirmation_point_id) if app.confirmation_point_id else None
    return {
        "info": info,
        "name": info.get("name") or app.account.name,
        "point": point.name if point else "",
        "state_label": flow.states[app.state].label if app.state in flow.states else app.state,
        "preferences": data.get("preferences") or [],
        "xueji": data.get("xueji") or {},
        "materials": data.get("materials") or {},
        "identity": data.get("identity") or {},
        "documents": named_materials(flow, data),
        "onsite": data.get("onsite") or {},
        "timeline": timeline(session, app, flow),
    }


def named_materials(flow: FlowSpec, data: dict[str, Any]) -> list[dict[str, str]]:
    """The submitted material photos with the document each was uploaded as (in the order of
    the applicant's documents; unnamed photos last, as 材料N)."""
    section = data.get("materials") or {}
    slots = section.get("slots") or {}
    order = {d.key: i for i, d in enumerate(required_documents(flow, data))}
    rows = []
    for n, uid in enumerate(section.get("files") or [], start=1):
        document = flow.materials.documents.get(slots.get(uid, ""))
        label = document.label if document else f"材料{n}"
        rank = order.get(document.key, len(order)) if document else len(order) + n
        rows.append({"uid": uid, "label": label, "hint": document.hint if document else "", "rank": rank})
    return sorted(rows, key=lambda r: r["rank"])


def timeline(session: Session, app: Application, flow: FlowSpec) -> list[dict[str, Any]]:
    """The application's history as staff read it: what happened, when, and any reason."""
    rows = session.scalars(
        select(HistoryEvent).where(HistoryEvent.application_id == app.id).order_by(HistoryEvent.seq)
    ).all()
    out = []
    for row in rows:
        branches = flow.branches(row.event, row.from_state)
        label = branches[0].label if branches and branches[0].label else SYSTEM_EVENTS.get(row.event, row.event)
        try:
            payload = json.loads(row.payload or "{}")
        except ValueError:
            payload = {}
        reason = payload.get("reason") if isinstance(payload.get("reason"), str) else ""
        who = {"student": "考生", "staff": "确认点", "system": "系统", "admin": "管理员"}.get(row.role, row.role)
        to = flow.states[row.to_state].label if row.to_state in flow.states else row.to_state
        out.append({"seq": row.seq, "label": label, "who": who, "at": _parse_at(row.at), "to": to, "reason": reason})
    return out


# ------------------------------------------------------------------------ decisions


def compose_reason(queue: Queue, choice: str, text: str) -> str:
    """A rejection's reason from the common-reason select and the free text (one is needed)."""
    choice, text = choice.strip(), text.strip()
    if choice and choice not in queue.reasons:
        raise InvalidInput(f"unknown common reason {choice!r}", {"reason": ["请从列表中选择常见原因"]})
    if not choice and not text:
        raise InvalidInput("rejection without a reason", {"reason": [NEED_REASON]})
    return f"{choice}：{text}" if choice and text else choice or text


def decide(
    engine: Engine,
    account: Account,
    app: Application,
    queue: Queue,
    *,
    approve: bool,
    choice: str = "",
    text: str = "",
    version: int | None,
    request_id: int | None = None,
) -> Fired:
    """Approve or reject one item: one engine event, at the version the staff member saw."""
    reason = "" if approve else compose_reason(queue, choice, text)
    if queue.state is None:
        payload: dict[str, Any] = {
            "request": request_id,
            "decision": queue.approve if approve else queue.reject,
            "reason": text.strip() if approve else reason,
        }
        event = CORRECTION_EVENT
    elif approve:
        event, payload = queue.approve, {"note": text.strip()}
    else:
        event, payload = queue.reject, {"reason": reason}
    fired = engine.fire(app.id, event, staff_actor(account), payload, expected_version=version)
    log.info("staff %d: %s on application %s (%s)", account.id, event, app.uid, "approve" if approve else "reject")
    return fired


def still_open(session: Session, app: Application, queue: Queue, request_id: int | None = None) -> bool:
    """After a conflict: is the item still waiting (someone changed something else), or done?"""
    session.expire_all()
    if queue.state is None:
        request = session.get(CorrectionRequest, request_id) if request_id is not None else None
        return request is not None and request.status == "open"
    fresh = session.get(Application, app.id)
    return fresh is not None and fresh.state == queue.state


def staff_point(session: Session, account: Account) -> ConfirmationPoint | None:
    return session.get(ConfirmationPoint, account.confirmation_point_id) if account.confirmation_point_id else None


def correction_evidence(request: CorrectionRequest) -> Sequence[str]:
    return list(request.evidence or [])
