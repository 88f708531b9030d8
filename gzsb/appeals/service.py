"""账号申诉 (学信网 §三.4): the owner of an ID number another account holds gets it back.

The case goes draft (mobile verified by SMS) → pending (images sent, a deadline promised)
→ approved or rejected, decided by an admin or the staff of the old account's 确认点.
Approving disables the old account (its sessions end: the epoch moves), moves its ID number
and mobile out of the way of the lookups (the blind indexes are retired, so the owner can
have a new account with that ID number), freezes its application (the ``freeze_for_appeal``
event, fired by the caller, whose step calls ``approve_locked`` in the engine's
transaction) and then ``issue_account`` gives the owner a new account with a one-time
password. Every step adds an ``AppealEvent``. No Flask here: callers pass session, vault,
time and settings, and commit.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gzsb.accounts.service import create_account, set_password
from gzsb.admin.service import Operator, one_time_password
from gzsb.admin.service import record as admin_record
from gzsb.appeals.names import FROZEN
from gzsb.common.beijing import BEIJING, as_utc
from gzsb.common.security import Vault, mask_id_number, mask_mobile, mask_name
from gzsb.errors import ConflictError, InvalidInput, NotFound
from gzsb.models import Account, AppealCase, AppealEvent, AppealFile, Application

log = logging.getLogger(__name__)

KINDS = {"id_front": "身份证人像面", "id_back": "身份证国徽面", "id_holding": "手持身份证照片"}
STATUS_LABELS = {"draft": "未提交", "pending": "审核中", "granted": "申诉通过", "rejected": "申诉未通过"}
TAKEN_BY_OTHER_DECIDER = "该申诉已被其他工作人员处理，请返回列表查看其他申诉。"
NOT_REGISTERED = "该身份证号尚未注册，无需申诉，请直接注册。"
OWN_MOBILE = "该手机号就是此身份证号已注册账号的手机号，请使用【找回密码】。"
MOBILE_TAKEN = "该手机号已绑定其他账号，请使用本人的其他手机号。"
ALREADY_OPEN = "该身份证号已有处理中的申诉，请凭申诉编号和手机号查询进度。"
NOT_APPEALABLE = "该身份证号不能在线申诉，请联系所在确认点。"
DRAFT_GONE = "申诉填写已超时，请重新验证手机号。"
MISSING_FILES = "请上传身份证人像面、国徽面和手持身份证照片。"
ACTION_LABELS = {
    "mobile_verified": "申诉人验证手机号",
    "submitted": "提交申诉",
    "granted": "申诉通过",
    "old_account_disabled": "停用原账号",
    "application_frozen": "冻结原账号的报名",
    "account_issued": "开通新账号并发送初始密码",
    "password_reissued": "重发初始密码",
    "rejected": "申诉不通过",
}


@dataclass(frozen=True)
class Settings:
    """What the area reads of the configuration (``from_config`` takes the Flask config)."""

    working_days: int
    holidays: frozenset[date]
    file_max_days: float
    file_days_after_decision: float
    draft_hours: float

    @classmethod
    def from_config(cls, config: Any) -> Settings:
        return cls(
            working_days=int(config["APPEAL_WORKING_DAYS"]),
            holidays=frozenset(date.fromisoformat(d) for d in config["APPEAL_HOLIDAYS"]),
            file_max_days=float(config["APPEAL_FILE_MAX_DAYS"]),
            file_days_after_decision=float(config["APPEAL_FILE_DAYS_AFTER_DECISION"]),
            draft_hours=float(config["APPEAL_DRAFT_HOURS"]),
        )


def working_days_after(start: date, days: int, holidays: Iterable[date] = ()) -> date:
    """The ``days``-th working day after ``start`` (Monday to Friday, not a listed holiday)."""
    off = set(holidays)
    current, counted = start, 0
    while counted < days:
        current += timedelta(days=1)
        if current.weekday() < 5 and current not in off:
            counted += 1
    return current


def retired_index(index: str, number: str) -> str:
    """What replaces an old account's blind index: unique, and matching no typed value."""
    return hashlib.sha256(f"appeal-retired|{number}|{index}".encode()).hexdigest()


def record(session: Session, case: AppealCase, actor: str, action: str, now: datetime, **details: Any) -> None:
    session.add(AppealEvent(case_id=case.id, at=as_utc(now), actor=actor, action=action, details=details))


def events_of(session: Session, case: AppealCase) -> list[AppealEvent]:
    return list(session.scalars(select(AppealEvent).where(AppealEvent.case_id == case.id).order_by(AppealEvent.id)))


def _number(session: Session, now: datetime) -> str:
    day = as_utc(now).astimezone(BEIJING).strftime("%Y%m%d")
    while True:  # 10^6 numbers a day; a clash is drawn again
        number = f"SS{day}{secrets.randbelow(10**6):06d}"
        if session.scalars(select(AppealCase.id).where(AppealCase.number == number)).first() is None:
            return number


def _lock(session: Session, query: Any) -> Any:
    return query.with_for_update() if session.get_bind().dialect.name != "sqlite" else query


# ------------------------------------------------------------------------- appellant


def open_draft(session: Session, vault: Vault, *, name: str, id_number: str, mobile: str, now: datetime) -> AppealCase:
    """A case for a verified mobile; refuses when there is nothing to appeal (Chinese reasons)."""
    id_index, mobile_index = vault.index(id_number), vault.index(mobile)
    holder = session.scalars(select(Account).where(Account.id_number_index == id_index)).first()
    if holder is None:
        raise InvalidInput("ID number not registered", {"id_number": [NOT_REGISTERED]})
    if holder.role != "student":
        raise InvalidInput("ID number of a staff account", {"id_number": [NOT_APPEALABLE]})
    if holder.mobile_index == mobile_index:
        raise InvalidInput("the holder's own mobile", {"mobile": [OWN_MOBILE]})
    if session.scalars(select(Account.id).where(Account.mobile_index == mobile_index)).first() is not None:
        raise InvalidInput("mobile of another account", {"mobile": [MOBILE_TAKEN]})
    pending = select(AppealCase.id).where(AppealCase.id_number_index == id_index, AppealCase.status == "pending")
    if session.scalars(pending).first() is not None:
        raise InvalidInput("a pending appeal exists", {"id_number": [ALREADY_OPEN]})
    app = session.scalars(select(Application).where(Application.account_id == holder.id)).first()
    case = AppealCase(
        number=_number(session, now),
        status="draft",
        name=name,
        id_number_enc=vault.encrypt(id_number),
        id_number_index=id_index,
        mobile_enc=vault.encrypt(mobile),
        mobile_index=mobile_index,
        old_account_id=holder.id,
        confirmation_point_id=app.confirmation_point_id if app is not None else None,
        created_at=as_utc(now),
    )
    session.add(case)
    session.flush()
    record(
        session, case, "appellant", "mobile_verified", now,
        name=mask_name(name), id_number=mask_id_number(id_number), mobile=mask_mobile(mobile),
    )  # fmt: skip
    log.info("appeal %s opened for %s (old account %d)", case.number, mask_id_number(id_number), holder.id)
    return case


def draft(session: Session, uid: str, now: datetime, settings: Settings) -> AppealCase:
    """The appellant's draft (from their session) while it is fresh."""
    case = session.scalars(select(AppealCase).where(AppealCase.uid == uid, AppealCase.status == "draft")).first()
    if case is None or as_utc(case.created_at) + timedelta(hours=settings.draft_hours) <= as_utc(now):
        raise ConflictError(f"appeal draft {uid} gone", public=DRAFT_GONE)
    return case


def submit(session: Session, case: AppealCase, kinds_present: set[str], now: datetime, settings: Settings) -> None:
    if set(KINDS) - kinds_present:
        raise InvalidInput("appeal images missing", {"files": [MISSING_FILES]})
    today = as_utc(now).astimezone(BEIJING).date()
    case.status, case.submitted_at = "pending", as_utc(now)
    case.due_on = working_days_after(today, settings.working_days, settings.holidays)
    record(session, case, "appellant", "submitted", now, due_on=case.due_on.isoformat())
    log.info("appeal %s submitted, due %s", case.number, case.due_on)


def lookup(session: Session, vault: Vault, number: str, mobile: str) -> AppealCase | None:
    """A submitted case by its number and the appellant's mobile (None when either is wrong)."""
    case = session.scalars(select(AppealCase).where(AppealCase.number == number.strip().upper())).first()
    if case is None or case.status == "draft" or case.mobile_index != vault.index(mobile):
        return None
    return case


# ------------------------------------------------------------------------- deciders


def _visible(query: Any, account: Account) -> Any:
    if account.role == "admin":
        return query
    if account.role == "staff" and account.confirmation_point_id is not None:
        return query.where(AppealCase.confirmation_point_id == account.confirmation_point_id)
    return query.where(AppealCase.id.is_(None))


def queue(session: Session, account: Account, status: str = "pending") -> list[AppealCase]:
    """Cases the account may decide, oldest first."""
    query = select(AppealCase).where(AppealCase.status == status).order_by(AppealCase.submitted_at, AppealCase.id)
    return list(session.scalars(_visible(query, account)))


def case_for(session: Session, account: Account, number: str) -> AppealCase:
    query = _visible(select(AppealCase).where(AppealCase.number == number[:20], AppealCase.status != "draft"), account)
    case = session.scalars(query).first()
    if case is None:
        raise NotFound(f"no appeal {number!r} for account {account.id}")
    return case


def frozen_target(session: Session, case: AppealCase) -> Application | None:
    """The old account's application still to be frozen (None: none, or frozen already)."""
    if case.old_account_id is None:
        return None
    app = session.scalars(select(Application).where(Application.account_id == case.old_account_id)).first()
    return app if app is not None and app.state != FROZEN else None


def approve_locked(
    session: Session, number: str, *, account_id: int | None, actor: str, now: datetime, application_uid: str = ""
) -> AppealCase:
    """Decide a pending case as approved and disable the old account, in the caller's
    transaction (the freeze step's, when there is an application). Only one decider wins:
    the status moves in one conditional UPDATE."""
    case = session.scalars(select(AppealCase).where(AppealCase.number == number)).first()
    if case is None or (account_id is not None and case.old_account_id != account_id):
        raise ConflictError(f"appeal {number!r} does not concern account {account_id}", public=TAKEN_BY_OTHER_DECIDER)
    moved = session.execute(
        update(AppealCase)
        .where(AppealCase.id == case.id, AppealCase.status == "pending")
        .values(status="granted", decided_at=as_utc(now), decided_by=actor, frozen_application_uid=application_uid),
        execution_options={"synchronize_session": False},
    ).rowcount
    if moved != 1:
        raise ConflictError(f"appeal {number} is not pending", public=TAKEN_BY_OTHER_DECIDER)
    session.refresh(case)
    record(session, case, actor, "granted", now)
    old = session.get(Account, case.old_account_id) if case.old_account_id is not None else None
    if old is not None:
        old.disabled_at = as_utc(now)
        old.session_epoch = Account.session_epoch + 1  # atomic: every session of it ends
        old.id_number_index = retired_index(old.id_number_index, case.number)
        if old.mobile_index is not None:
            old.mobile_index = retired_index(old.mobile_index, case.number)
        record(session, case, actor, "old_account_disabled", now, account=f"account:{old.id}")
        # The admins' action log lists every account disabled, whoever disabled it.
        admin_record(session, Operator(actor), now, "disable_account", f"account:{old.id}", appeal=case.number)
    if application_uid:
        record(session, case, actor, "application_frozen", now, application=application_uid)
    session.flush()
    log.info("appeal %s approved by %s; old account %s disabled", case.number, actor, case.old_account_id)
    return case


def issue_account(
    session: Session, vault: Vault, case: AppealCase, *, actor: str, now: datetime
) -> tuple[Account, str]:
    """The owner's new account with a one-time password (returned once, to be sent by SMS).
    Again (the SMS was lost): a new one-time password, while the owner has not chosen one."""
    case = session.scalars(_lock(session, select(AppealCase).where(AppealCase.id == case.id))).one()
    if case.status != "granted":
        raise ConflictError(f"appeal {case.number} is {case.status}", public=TAKEN_BY_OTHER_DECIDER)
    id_number, mobile = vault.decrypt(case.id_number_enc), vault.decrypt(case.mobile_enc)
    password = one_time_password(id_number, mobile)
    if case.new_account_id is None:
        account = create_account(session, vault, name=case.name, id_number=id_number, password=password, mobile=mobile)
        account.must_change_password = True
        case.new_account_id = account.id
        record(session, case, actor, "account_issued", now, account=f"account:{account.id}")
    else:
        account = session.get(Account, case.new_account_id)
        if account is None or not account.must_change_password:
            raise ConflictError("the owner chose a password already", public="考生已设置自己的密码，无需重发。")
        set_password(account, password)
        account.must_change_password = True
        record(session, case, actor, "password_reissued", now, account=f"account:{account.id}")
    session.flush()
    return account, password


def reject(session: Session, case: AppealCase, *, actor: str, reason: str, now: datetime, settings: Settings) -> None:
    reason = reason.strip()[:200]
    if not reason:
        raise InvalidInput("no reason", {"reason": ["请填写不通过原因"]})
    moved = session.execute(
        update(AppealCase)
        .where(AppealCase.id == case.id, AppealCase.status == "pending")
        .values(status="rejected", decided_at=as_utc(now), decided_by=actor, reason=reason),
        execution_options={"synchronize_session": False},
    ).rowcount
    if moved != 1:
        raise ConflictError(f"appeal {case.number} is not pending", public=TAKEN_BY_OTHER_DECIDER)
    session.refresh(case)
    record(session, case, actor, "rejected", now, reason=reason)
    shorten_retention(session, case, now, settings)
    log.info("appeal %s rejected by %s", case.number, actor)


def shorten_retention(session: Session, case: AppealCase, now: datetime, settings: Settings) -> None:
    """Once decided, the images are kept only ``file_days_after_decision`` longer."""
    until = as_utc(now) + timedelta(days=settings.file_days_after_decision)
    for row in session.scalars(select(AppealFile).where(AppealFile.case_id == case.id)):
        row.delete_after = min(as_utc(row.delete_after), until)
