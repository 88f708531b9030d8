"""Admin work on accounts (staff, admin, auditor) and 确认点, used by the pages and the CLI.

No Flask here: callers pass the session, the vault, the acting admin and the time, and
commit. Every change adds an ``AdminAction`` row in the same transaction (personal fields
masked). One-time passwords are returned to the caller once and never stored or logged.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from gzsb.accounts.passwords import password_problems
from gzsb.accounts.service import create_account, find_by_id_number, id_number_taken, mobile_taken, set_password
from gzsb.accounts.validators import parse_id_number, parse_mobile, parse_name
from gzsb.common.beijing import as_utc
from gzsb.common.security import Vault, mask_id_number, mask_mobile, mask_name
from gzsb.errors import ConflictError, InvalidInput, NotFound
from gzsb.models import Account, AdminAction, Application, ConfirmationPoint

log = logging.getLogger(__name__)

MANAGED_ROLES = ("staff", "admin", "auditor")
ROLE_LABELS = {"student": "考生", "staff": "确认点工作人员", "admin": "管理员", "auditor": "审计员"}

# Size caps of what admins type (the columns' own limits or less).
MAX_NAME, MAX_POINT_NAME, MAX_ADDRESS, MAX_HOURS = 30, 100, 200, 500
_CODE = re.compile(r"^[A-Z0-9]{2,16}$", re.ASCII)
# One-time passwords: no look-alike characters, since they are read off a screen and typed.
_OTP_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lIo")
OTP_LENGTH = 12


@dataclass(frozen=True)
class Operator:
    """Who acts: an admin's account (pages) or ``cli:<OS user>`` (commands)."""

    label: str
    account_id: int | None = None

    @classmethod
    def of(cls, account: Account) -> Operator:
        return cls(f"account:{account.id}", account.id)


@dataclass(frozen=True)
class AccountRow:
    id: int
    role: str
    name: str
    id_number: str  # masked
    mobile: str  # masked
    point: str
    disabled: bool
    must_change_password: bool


@dataclass(frozen=True)
class PointRow:
    point: ConfirmationPoint
    staff: int
    applications: int

    @property
    def deletable(self) -> bool:
        return not self.staff and not self.applications


# ---------------------------------------------------------------------------- input


def clean(value: str | None, field: str, cap: int, *, required: bool = True, label: str = "") -> str:
    """NFKC-normalised and stripped; InvalidInput if missing or longer than ``cap``."""
    text = unicodedata.normalize("NFKC", value or "").strip()
    if required and not text:
        raise InvalidInput(f"{field} missing", {field: [f"请填写{label or field}"]})
    if len(text) > cap:
        raise InvalidInput(f"{field} too long", {field: [f"{label or field}不能超过{cap}个字"]})
    return text


def _id_number(raw: str, today: date) -> str:
    # The same checks as registration (gzsb.accounts.validators): NFKC, ASCII digits, area code.
    try:
        return parse_id_number(clean(raw, "id_number", 40, label="身份证号"), today=today).value
    except ValueError as exc:
        raise InvalidInput("bad id number", {"id_number": [str(exc)]}) from None


def _mobile(raw: str) -> str:
    try:
        return parse_mobile(clean(raw, "mobile", 32, label="手机号"))
    except ValueError as exc:
        raise InvalidInput("bad mobile", {"mobile": [str(exc)]}) from None


def _person_name(raw: str) -> str:
    try:
        return parse_name(clean(raw, "name", MAX_NAME, label="姓名"))
    except ValueError as exc:
        raise InvalidInput("bad name", {"name": [str(exc)]}) from None


def _point_code(raw: str) -> str:
    text = clean(raw, "code", 16, label="确认点代码").upper()
    if not (text.isascii() and _CODE.match(text)):
        raise InvalidInput("bad point code", {"code": ["确认点代码为2～16位大写字母或数字"]})
    return text


# ------------------------------------------------------------------------- the log


def record(session: Session, by: Operator, now: datetime, action: str, target: str, **details: Any) -> AdminAction:
    """Add one action to the log, in the caller's transaction."""
    row = AdminAction(at=as_utc(now), actor=by.label, action=action, target=target, details=details)
    session.add(row)
    return row


@event.listens_for(AdminAction, "before_update")
@event.listens_for(AdminAction, "before_delete")
def _append_only(_mapper: Any, _connection: Any, target: AdminAction) -> None:
    raise ConflictError(f"admin action {target.id} is append-only")


def actions(session: Session, limit: int = 200) -> list[AdminAction]:
    return list(session.scalars(select(AdminAction).order_by(AdminAction.id.desc()).limit(limit)))


def describe(row: AdminAction) -> str:
    """One line for the CLI (English keys, masked values)."""
    details = " ".join(f"{k}={v}" for k, v in sorted((row.details or {}).items()))
    return f"{as_utc(row.at).isoformat(timespec='seconds')} {row.actor} {row.action} {row.target} {details}".rstrip()


# ----------------------------------------------------------------------- passwords


def one_time_password(id_number: str = "", mobile: str = "") -> str:
    """Random, with letters and digits, and acceptable to the password rules."""
    while True:
        candidate = "".join(secrets.choice(_OTP_ALPHABET) for _ in range(OTP_LENGTH))
        if not password_problems(candidate, id_number=id_number or None, mobile=mobile or None):
            return candidate


# ------------------------------------------------------------------------ 确认点


def point_by_code(session: Session, code: str) -> ConfirmationPoint:
    point = session.scalars(select(ConfirmationPoint).where(ConfirmationPoint.code == code.strip().upper())).first()
    if point is None:
        raise NotFound(f"no confirmation point {code!r}", public="未找到该确认点")
    return point


def point_by_id(session: Session, point_id: int) -> ConfirmationPoint:
    point = session.get(ConfirmationPoint, point_id)
    if point is None:
        raise NotFound(f"no confirmation point {point_id}", public="未找到该确认点")
    return point


def list_points(session: Session) -> list[PointRow]:
    staff = dict(
        session.execute(
            select(Account.confirmation_point_id, func.count())
            .where(Account.role == "staff", Account.confirmation_point_id.is_not(None))
            .group_by(Account.confirmation_point_id)
        ).all()
    )
    apps = dict(
        session.execute(
            select(Application.confirmation_point_id, func.count())
            .where(Application.confirmation_point_id.is_not(None))
            .group_by(Application.confirmation_point_id)
        ).all()
    )
    points = session.scalars(select(ConfirmationPoint).order_by(ConfirmationPoint.code))
    return [PointRow(p, staff.get(p.id, 0), apps.get(p.id, 0)) for p in points]


def _point_fields(name: str | None, address: str | None, office_hours: str | None) -> dict[str, str]:
    fields = {}
    if name is not None:
        fields["name"] = clean(name, "name", MAX_POINT_NAME, label="确认点名称")
    if address is not None:
        fields["address"] = clean(address, "address", MAX_ADDRESS, required=False, label="地址")
    if office_hours is not None:
        fields["office_hours"] = clean(office_hours, "office_hours", MAX_HOURS, required=False, label="办公时间")
    return fields


def create_point(
    session: Session, by: Operator, now: datetime, *, code: str, name: str, address: str = "", office_hours: str = ""
) -> ConfirmationPoint:
    code = _point_code(code)
    fields = _point_fields(name, address, office_hours)
    if session.scalars(select(ConfirmationPoint.id).where(ConfirmationPoint.code == code)).first() is not None:
        raise ConflictError(f"point {code} exists", public="该确认点代码已存在")
    point = ConfirmationPoint(code=code, **fields)
    session.add(point)
    session.flush()
    record(session, by, now, "create_point", f"point:{code}", **fields)
    return point


def edit_point(
    session: Session,
    by: Operator,
    now: datetime,
    point: ConfirmationPoint,
    *,
    name: str | None = None,
    address: str | None = None,
    office_hours: str | None = None,
) -> ConfirmationPoint:
    changed = {k: v for k, v in _point_fields(name, address, office_hours).items() if getattr(point, k) != v}
    for key, value in changed.items():
        setattr(point, key, value)
    if changed:
        record(session, by, now, "edit_point", f"point:{point.code}", **changed)
    return point


def set_point_enabled(session: Session, by: Operator, now: datetime, point: ConfirmationPoint, enabled: bool) -> None:
    if enabled == (point.disabled_at is None):
        return
    point.disabled_at = None if enabled else as_utc(now)
    record(session, by, now, "enable_point" if enabled else "disable_point", f"point:{point.code}")


def delete_point(session: Session, by: Operator, now: datetime, point: ConfirmationPoint) -> None:
    """Only a point nobody uses: with staff or applications it can only be disabled."""
    row = next(r for r in list_points(session) if r.point.id == point.id)
    if not row.deletable:
        raise ConflictError(
            f"point {point.code} has {row.staff} staff and {row.applications} applications",
            public="该确认点已有工作人员或考生报名，不能删除，只能停用",
        )
    record(session, by, now, "delete_point", f"point:{point.code}", name=point.name)
    session.delete(point)
    session.flush()


# ------------------------------------------------------------------------- accounts


def _masked(vault: Vault, account: Account) -> dict[str, str]:
    mobile = vault.decrypt(account.mobile_enc) if account.mobile_enc else ""
    return {
        "name": mask_name(account.name),
        "id_number": mask_id_number(vault.decrypt(account.id_number_enc)),
        "mobile": mask_mobile(mobile) if mobile else "",
    }


def managed_account(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None or account.role not in MANAGED_ROLES:
        raise NotFound(f"no staff/admin/auditor account {account_id}", public="未找到该账号")
    return account


def account_by_id_number(session: Session, vault: Vault, raw: str) -> Account:
    account = find_by_id_number(session, vault, unicodedata.normalize("NFKC", raw).strip().upper())
    if account is None or account.role not in MANAGED_ROLES:
        raise NotFound("no staff/admin/auditor account with this ID number", public="未找到该账号")
    return account


def list_accounts(session: Session, vault: Vault, role: str | None = None) -> list[AccountRow]:
    query = select(Account).where(Account.role.in_(MANAGED_ROLES)).order_by(Account.role, Account.id)
    if role:
        query = query.where(Account.role == role)
    rows = []
    for account in session.scalars(query):
        masked = _masked(vault, account)
        point = account.confirmation_point
        rows.append(
            AccountRow(
                id=account.id,
                role=account.role,
                name=account.name,
                id_number=masked["id_number"],
                mobile=masked["mobile"],
                point=f"{point.code} {point.name}" if point else "",
                disabled=account.disabled_at is not None,
                must_change_password=account.must_change_password,
            )
        )
    return rows


def role_counts(session: Session) -> dict[str, dict[str, int]]:
    """{role: {"active": n, "disabled": m}} for every role (students included)."""
    counts = {role: {"active": 0, "disabled": 0} for role in ROLE_LABELS}
    rows = session.execute(
        select(Account.role, Account.disabled_at.is_(None), func.count()).group_by(
            Account.role, Account.disabled_at.is_(None)
        )
    )
    for role, active, count in rows:
        counts.setdefault(role, {"active": 0, "disabled": 0})["active" if active else "disabled"] += count
    return counts


def create_staff_account(
    session: Session,
    vault: Vault,
    by: Operator,
    now: datetime,
    *,
    role: str,
    id_number: str,
    name: str,
    mobile: str,
    point_code: str = "",
    today: date,
) -> tuple[Account, str]:
    """A staff, admin or auditor account with a one-time password (returned, never stored)."""
    if role not in MANAGED_ROLES:
        raise InvalidInput(f"role {role!r}", {"role": ["请选择账号类型"]})
    number, person, phone = _id_number(id_number, today), _person_name(name), _mobile(mobile)
    code = clean(point_code, "point", 16, required=False)
    point = None
    if role == "staff":
        if not code:
            raise InvalidInput("staff need a point", {"point": ["确认点工作人员必须指定所属确认点"]})
        point = point_by_code(session, code)
        if point.disabled_at is not None:
            raise InvalidInput("point disabled", {"point": ["该确认点已停用"]})
    elif code:
        raise InvalidInput(f"{role} with a point", {"point": ["只有确认点工作人员属于确认点"]})
    if id_number_taken(session, vault, number):  # create_account checks too; this one comes first
        raise ConflictError("an account with this ID number exists", public="该身份证号已注册")
    if mobile_taken(session, vault, phone):
        raise ConflictError("mobile taken", public="该手机号已绑定其他账号")
    password = one_time_password(number, phone)
    account = create_account(
        session,
        vault,
        name=person,
        id_number=number,
        password=password,
        mobile=phone,
        role=role,
        confirmation_point_id=point.id if point else None,
    )
    account.must_change_password = True
    details = {"role": role, **_masked(vault, account)}
    if point is not None:
        details["point"] = point.code
    record(session, by, now, "create_account", f"account:{account.id}", **details)
    log.info("%s created %s account %d", by.label, role, account.id)
    return account, password


def reset_password(session: Session, vault: Vault, by: Operator, now: datetime, account: Account) -> str:
    """A new one-time password (returned once); every session of the account ends."""
    masked = _masked(vault, account)
    password = one_time_password(vault.decrypt(account.id_number_enc), "")
    set_password(account, password)
    account.must_change_password = True
    record(session, by, now, "reset_password", f"account:{account.id}", id_number=masked["id_number"])
    log.info("%s reset the password of account %d", by.label, account.id)
    return password


def _active_admins(session: Session) -> list[int]:
    # FOR UPDATE (PostgreSQL): two admins disabling each other at once cannot both pass.
    query = select(Account.id).where(Account.role == "admin", Account.disabled_at.is_(None)).with_for_update()
    return list(session.scalars(query))


def set_account_enabled(
    session: Session, vault: Vault, by: Operator, now: datetime, account: Account, enabled: bool
) -> None:
    """Disable (its sessions end at once) or enable again; never oneself or the last admin."""
    if enabled == (account.disabled_at is None):
        return
    if not enabled:
        if by.account_id == account.id:
            raise ConflictError("admin disabling themself", public="不能停用自己的账号")
        if account.role == "admin" and _active_admins(session) == [account.id]:
            raise ConflictError("last active admin", public="这是最后一个启用的管理员账号，不能停用")
        account.disabled_at = as_utc(now)
        # Atomic in the database: a concurrent login or logout cannot lose the bump.
        account.session_epoch = Account.session_epoch + 1
    else:
        account.disabled_at = None
    masked = _masked(vault, account)
    action = "enable_account" if enabled else "disable_account"
    record(session, by, now, action, f"account:{account.id}", role=account.role, id_number=masked["id_number"])
    session.flush()
    log.info("%s: %s account %d", by.label, action, account.id)
