"""Accounts: creation, password hashing (Argon2id), lookup by ID number or mobile."""

from __future__ import annotations

import logging

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gzsb.errors import ConflictError
from gzsb.models import Account
from gzsb.security import Vault

log = logging.getLogger(__name__)
_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def check_password(account: Account, password: str) -> bool:
    try:
        return _HASHER.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def find_account(session: Session, vault: Vault, login: str) -> Account | None:
    """By ID number or mobile (both are looked up through their blind index)."""
    key = vault.index(login)
    return session.scalars(
        select(Account).where(or_(Account.id_number_index == key, Account.mobile_index == key))
    ).first()


def create_account(
    session: Session,
    vault: Vault,
    *,
    name: str,
    id_number: str,
    password: str,
    mobile: str | None = None,
    role: str = "student",
    confirmation_point_id: int | None = None,
) -> Account:
    index = vault.index(id_number)
    if session.scalars(select(Account.id).where(Account.id_number_index == index)).first() is not None:
        raise ConflictError("an account with this ID number exists", public="该身份证号已注册")
    account = Account(
        name=name,
        role=role,
        id_number_enc=vault.encrypt(id_number),
        id_number_index=index,
        mobile_enc=vault.encrypt(mobile) if mobile else None,
        mobile_index=vault.index(mobile) if mobile else None,
        password_hash=hash_password(password),
        confirmation_point_id=confirmation_point_id,
    )
    session.add(account)
    session.flush()
    return account
