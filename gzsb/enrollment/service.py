"""What steps may ask of the outside world, bound to one database session."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.common.security import Vault
from gzsb.models import (
    Account,
    ConfirmationPoint,
    CorrectionRequest,
    Institution,
    Major,
    RegistryRecord,
    Upload,
)

log = logging.getLogger(__name__)

UNKNOWN_INSTITUTION = "所选院校不在招生院校目录中，请重新选择"
UNKNOWN_MAJOR = "所选专业不属于该院校，请重新选择"


@dataclass
class Services:
    session: Session
    vault: Vault

    def confirmation_point(self, code: str) -> int | None:
        return self.session.scalars(select(ConfirmationPoint.id).where(ConfirmationPoint.code == code)).first()

    def is_own_id_number(self, record: Any, id_number: str) -> bool:
        account = self.session.get(Account, record.account_id)
        return account is not None and account.id_number_index == self.vault.index(id_number)

    def xueji_lookup(self, id_number: str) -> dict[str, Any] | None:
        if not id_number:
            return None
        row = self.session.scalars(
            select(RegistryRecord).where(RegistryRecord.id_number_index == self.vault.index(id_number))
        ).first()
        if row is None:
            return None
        return {
            "id": row.id,
            "name": row.name,
            "school": row.school,
            "major": row.major,
            "level": row.level,
            "study_form": row.study_form,
            "graduation_year": row.graduation_year,
            "has_photo": row.photo is not None,
        }

    # -- the catalogue -----------------------------------------------------------------

    def _catalogue(self, choices: Sequence[dict[str, Any]]) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
        """Names of the institutions and (institution, major) pairs the choices name."""
        codes = {str(c.get("institution", "")) for c in choices}
        rows = self.session.execute(
            select(Institution.code, Institution.name, Major.code, Major.name)
            .join(Major, Major.institution_id == Institution.id, isouter=True)
            .where(Institution.code.in_(codes))
        )
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
        if not choices:
            return {}
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
        return errors

    def describe_choices(self, choices: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The choices with the catalogue's names (empty when a code is unknown)."""
        institutions, majors = self._catalogue(choices) if choices else ({}, {})
        return [
            {
                "institution": c["institution"],
                "institution_name": institutions.get(c["institution"], ""),
                "major": c["major"],
                "major_name": majors.get((c["institution"], c["major"]), ""),
            }
            for c in choices
        ]

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
