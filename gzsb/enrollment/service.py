"""What steps may ask of the outside world, bound to one database session.

Steps reach the database only through the ``Services`` the engine hands them
(``ctx.services``); ``services_of`` is the one way to get it, with one behaviour when it is
missing: a ConfigurationError naming the step's need.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, inspect, null, select, update
from sqlalchemy.orm import Session

from gzsb.common.security import Vault
from gzsb.errors import ConfigurationError
from gzsb.identity.attempts import take_attempt
from gzsb.models import (
    Account,
    Application,
    ConfirmationPoint,
    CorrectionRequest,
    HistoryEvent,
    Institution,
    Major,
    PaymentOrder,
    RegistrationForm,
    RegistryRecord,
    Upload,
)
from gzsb.payments import orders

log = logging.getLogger(__name__)

UNKNOWN_INSTITUTION = "所选院校不在招生院校目录中，请重新选择"
UNKNOWN_MAJOR = "所选专业不属于该院校，请重新选择"


# What steps ask in the hot path, built once and run by Core on the session's connection
# (in the transition's transaction): building each statement anew and the ORM's execution
# (autoflush, its result set-up) cost 2-4x the query itself (bench/RESULTS.md, session 7).
# They read and write rows, not entities: the engine commits (and so expires) right after.
_POINT = select(ConfirmationPoint.id).where(ConfirmationPoint.code == bindparam("code"))
# The 学籍 record by blind index. The columns, not the entity: the photo (an image) would be
# sent only to learn it exists.
_XUEJI = select(
    RegistryRecord.id, RegistryRecord.name, RegistryRecord.school, RegistryRecord.major, RegistryRecord.level,
    RegistryRecord.study_form, RegistryRecord.graduation_year, RegistryRecord.photo.is_not(None).label("has_photo"),
).where(RegistryRecord.id_number_index == bindparam("index"))  # fmt: skip
_CATALOGUE = (
    select(Institution.code, Institution.name, Major.code, Major.name)
    .join(Major, Major.institution_id == Institution.id, isouter=True)
    .where(Institution.code.in_(bindparam("codes", expanding=True)))
)
_UPLOAD_KINDS = select(Upload.uid, Upload.kind).where(
    Upload.application_id == bindparam("application_id"),
    Upload.deleted_at.is_(None),
    Upload.uid.in_(bindparam("uids", expanding=True)),
)
_ID_INDEX = select(Account.id_number_index).where(Account.id == bindparam("account_id"))
_ACCOUNT = inspect(Account)
# One UPDATE closes them (was SELECT … FOR UPDATE, then an UPDATE per request): it re-checks
# ``status = 'open'`` on each row it locks, so a request decided meanwhile is left alone.
_CLOSE_OPEN = (
    update(CorrectionRequest)
    .where(CorrectionRequest.application_id == bindparam("b_application"), CorrectionRequest.status == "open")
    .values(status=bindparam("b_status"), decided_at=bindparam("b_now"), note=bindparam("b_note"))
)


def services_of(ctx: Any, need: str) -> Services:
    """The services of a step's context; a clear error when the engine was built without."""
    services = getattr(ctx, "services", None)
    if services is None:
        raise ConfigurationError(f"the step needs services ({need}); build the engine with gzsb.bootstrap.engine()")
    return services


def _described(
    choices: Sequence[dict[str, Any]], institutions: dict[str, str], majors: dict[tuple[str, str], str]
) -> list[dict[str, Any]]:
    return [
        {
            "institution": c["institution"],
            "institution_name": institutions.get(c["institution"], ""),
            "major": c["major"],
            "major_name": majors.get((c["institution"], c["major"]), ""),
        }
        for c in choices
    ]


@dataclass
class Services:
    session: Session
    vault: Vault

    def confirmation_point(self, code: str) -> int | None:
        return self.session.connection().execute(_POINT, {"code": code}).scalar()

    def is_own_id_number(self, record: Any, id_number: str) -> bool:
        # The log-in gate usually loaded the account already (no query then); else one column.
        account = self.session.identity_map.get(_ACCOUNT.identity_key_from_primary_key((record.account_id,)))
        if account is not None:
            index = account.id_number_index
        else:
            index = self.session.connection().execute(_ID_INDEX, {"account_id": record.account_id}).scalar()
        return index is not None and index == self.vault.index(id_number)

    def xueji_lookup(self, id_number: str) -> dict[str, Any] | None:
        if not id_number:
            return None
        row = self.session.connection().execute(_XUEJI, {"index": self.vault.index(id_number)}).first()
        return None if row is None else {**row._mapping, "has_photo": bool(row.has_photo)}

    # -- the catalogue -----------------------------------------------------------------

    def _catalogue(self, choices: Sequence[dict[str, Any]]) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
        """Names of the institutions and (institution, major) pairs the choices name."""
        codes = sorted({str(c.get("institution", "")) for c in choices})
        rows = self.session.connection().execute(_CATALOGUE, {"codes": codes})
        institutions: dict[str, str] = {}
        majors: dict[tuple[str, str], str] = {}
        for code, name, major_code, major_name in rows:
            institutions[code] = name
            if major_code is not None:
                majors[(code, major_code)] = major_name
        return institutions, majors

    def catalogue_loaded(self) -> bool:
        return self.session.scalars(select(Institution.id).limit(1)).first() is not None

    def check_choices(self, choices: Sequence[dict[str, Any]]) -> dict[int, dict[str, list[str]]]:
        """Errors by position: an institution not in the catalogue, a major not of its institution.

        Strict even before `flask catalog import`: with no catalogue nothing is in it, so
        every choice is refused (a 志愿 nobody can check would reach the institutions unchecked).
        """
        return self.checked_choices(choices)[0]

    def checked_choices(
        self, choices: Sequence[dict[str, Any]]
    ) -> tuple[dict[int, dict[str, list[str]]], list[dict[str, Any]]]:
        """``check_choices`` and ``describe_choices`` from one catalogue query."""
        if not choices:
            return {}, []
        institutions, majors = self._catalogue(choices)
        if not institutions and not self.catalogue_loaded():
            log.warning("no catalogue imported (flask catalog import): every 志愿 is refused")
        errors: dict[int, dict[str, list[str]]] = {}
        for position, choice in enumerate(choices):
            institution, major = choice.get("institution"), choice.get("major")
            if institution not in institutions:
                errors[position] = {"institution": [UNKNOWN_INSTITUTION]}
            elif (institution, major) not in majors:
                errors[position] = {"major": [UNKNOWN_MAJOR]}
        return errors, _described(choices, institutions, majors)

    def describe_choices(self, choices: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The choices with the catalogue's names (empty when a code is unknown)."""
        institutions, majors = self._catalogue(choices) if choices else ({}, {})
        return _described(choices, institutions, majors)

    # -- 上传审核 and 学籍 corrections (steps of gzsb.staff.steps) ----------------------

    def live_uploads(self, application_id: int, uids: Sequence[str], kind: str) -> set[str]:
        """Those of ``uids`` that are this application's not-deleted uploads of ``kind``."""
        if not uids:
            return set()
        rows = self.session.scalars(
            select(Upload.uid).where(
                Upload.application_id == application_id,
                Upload.kind == kind,
                Upload.deleted_at.is_(None),
                Upload.uid.in_(list(uids)),
            )
        )
        return set(rows)

    def live_upload_kinds(self, application_id: int, uids: Sequence[str]) -> dict[str, str]:
        """Those of ``uids`` that are this application's not-deleted uploads, with their kind
        (one query for the identity pages' two images)."""
        if not uids:
            return {}
        rows = self.session.connection().execute(_UPLOAD_KINDS, {"application_id": application_id, "uids": list(uids)})
        return {uid: kind for uid, kind in rows}

    def upload_slots(self, application_id: int, uids: Sequence[str], kind: str) -> dict[str, str]:
        """Those of ``uids`` that are this application's live uploads of ``kind``, with the
        document slot each was added to ("" for none)."""
        if not uids:
            return {}
        rows = self.session.execute(
            select(Upload.uid, Upload.slot).where(
                Upload.application_id == application_id,
                Upload.kind == kind,
                Upload.deleted_at.is_(None),
                Upload.uid.in_(list(uids)),
            )
        )
        return {uid: slot for uid, slot in rows}

    def decide_correction(
        self, application_id: int, request_id: int, *, status: str, note: str, decided_by: int | None, now: Any
    ) -> bool:
        """Close this application's open correction request; False when it is not open."""
        request = self.session.scalars(
            select(CorrectionRequest)
            .where(
                CorrectionRequest.id == request_id,
                CorrectionRequest.application_id == application_id,
                CorrectionRequest.status == "open",
            )
            .with_for_update()
        ).first()
        if request is None:
            return False
        if decided_by is not None and self.session.get(Account, decided_by) is None:
            decided_by = None  # an actor without an account row (scripts): the history names it
        request.status, request.note, request.decided_at, request.decided_by = status, note, now, decided_by
        return True

    def close_open_corrections(self, application_id: int, *, status: str, note: str, now: datetime) -> int:
        """The student withdraws or replaces their report: its open requests leave the queue."""
        params = {"b_application": application_id, "b_status": status, "b_now": now, "b_note": note}
        return int(self.session.connection().execute(_CLOSE_OPEN, params).rowcount)

    def file_correction(
        self,
        application_id: int,
        *,
        registry_record_id: int | None,
        confirmation_point_id: int | None,
        problem: str,
        evidence: Sequence[str],
        now: datetime,
    ) -> int:
        """A new open correction request (信息有误) for the registrar's queue; its id."""
        request = CorrectionRequest(
            application_id=application_id,
            registry_record_id=registry_record_id,
            confirmation_point_id=confirmation_point_id,
            problem=problem,
            evidence=list(evidence),
            status="open",
            created_at=now,
        )
        self.session.add(request)
        self.session.flush()
        return request.id

    # -- 身份认证: the per-ID-number daily cap of face comparisons ---------------------------

    def take_face_attempt(self, account_id: int, now: datetime, cap: int) -> int | None:
        """Count one comparison for the account's ID number today (atomic, in this
        transaction); the new count, or None when the cap was already reached."""
        index = self.session.connection().execute(_ID_INDEX, {"account_id": account_id}).scalar()
        if index is None:
            raise ConfigurationError(f"account {account_id} does not exist")
        return take_attempt(self.session, index, now, cap)

    # -- 网上支付 (steps of gzsb.payments.steps): the payment_orders row is the order --------

    def current_order(self, application_id: int) -> PaymentOrder | None:
        return orders.current(self.session, application_id)

    def open_order(
        self, application_id: int, *, number: str, amount_fen: int, currency: str, deadline: datetime, now: datetime
    ) -> PaymentOrder:
        return orders.open_order(self.session, application_id, number, amount_fen, currency, deadline, now)

    def pay_order(self, number: str, *, gateway: str, trade_no: str, channel: str, now: datetime) -> bool:
        return orders.pay(self.session, number, gateway=gateway, trade_no=trade_no, channel=channel, now=now)

    def expire_order(self, application_id: int, now: datetime) -> PaymentOrder | None:
        return orders.expire(self.session, application_id, now)


def latest_correction(session: Session, application_id: int) -> dict[str, Any]:
    """The application's latest 学籍 correction request (信息有误) as pages show it; {} if none.

    The ``CorrectionRequest`` row is the only record of a report: pages, staff and the
    evidence route all read it from here."""
    row = session.scalars(
        select(CorrectionRequest)
        .where(CorrectionRequest.application_id == application_id)
        .order_by(CorrectionRequest.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return {}
    return {
        "request_id": row.id,
        "problem": row.problem,
        # Stored as storage keys (evidence/<uid>/<name>); pages link by name.
        "evidence": [str(key).rsplit("/", 1)[-1] for key in row.evidence or []],
        "status": row.status,
        "at": row.created_at.isoformat() if row.created_at else "",
        "decision": {"reason": row.note} if row.decided_at else {},
    }


@dataclass(frozen=True)
class AccountPage:
    """A student's account with what the 流程页面 shows, fetched in one statement."""

    account: Account
    application: Application | None
    visited: frozenset[str]  # every state the history entered, and the current one
    downloaded_at: datetime | None  # when the 报名表 was first downloaded
    journey: bool = True  # False: visited and downloaded_at were not asked for


@functools.cache
def _account_page_statement(journey: bool) -> Select[Any]:
    # Built once: composing the statement costs more CPU than running it (SQLAlchemy's
    # coercions and cache key), and this runs on every student request.
    visits = (
        select(func.aggregate_strings(HistoryEvent.to_state, ","))
        .where(HistoryEvent.application_id == Application.id)
        .scalar_subquery()
    )
    downloaded = (
        select(RegistrationForm.downloaded_at)
        .where(RegistrationForm.application_id == Application.id)
        .scalar_subquery()
    )
    if not journey:  # a status poll or a POST: no history scan
        visits, downloaded = null(), null()  # type: ignore[assignment]
    return (
        select(Account, Application, visits, downloaded)
        .outerjoin(Application, Application.account_id == Account.id)
        .where(Account.id == bindparam("account_id"))
        .order_by(Application.id)
        .limit(1)
    )


def account_page(session: Session, account_id: int, *, journey: bool = True) -> AccountPage | None:
    """The account, its application and (with ``journey``) the states its history entered and
    the 报名表's download time, in ONE round trip (the log-in gate and the 流程页面 asked in four)."""
    row = session.execute(_account_page_statement(journey), {"account_id": account_id}).first()
    if row is None:
        return None
    account, app, states, downloaded_at = row
    if app is None:
        return AccountPage(account, None, frozenset(), None, journey)
    # State names are identifiers (the flow loader's NAME pattern): a comma never occurs in one.
    visited = frozenset((states or "").split(",")) - {""} | {app.state}
    return AccountPage(account, app, visited, downloaded_at, journey)
