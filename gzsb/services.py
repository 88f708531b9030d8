"""What steps may ask of the outside world, bound to one database session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.models import Account, ConfirmationPoint, RegistryRecord
from gzsb.security import Vault


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
