"""Accounts: creation, password hashing (Argon2id), lookup by ID number or mobile,
password changes (which end every session of the account)."""

from __future__ import annotations

import contextlib
import logging

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gzsb.common.security import Vault
from gzsb.errors import ConflictError
from gzsb.models import Account

log = logging.getLogger(__name__)
_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def check_password(account: Account, password: str) -> bool:
    try:
        return _HASHER.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_DECOY_HASH: list[str] = []


def check_password_of_nobody(password: str) -> bool:
    """The same Argon2 work as ``check_password`` for a login that matches no account, so
    the answer's timing does not tell known from unknown ID numbers and mobiles. False."""
    if not _DECOY_HASH:
        _DECOY_HASH.append(_HASHER.hash("decoy-password-never-matches"))
    with contextlib.suppress(VerificationError, InvalidHashError):
        _HASHER.verify(_DECOY_HASH[0], password)
    return False


def find_account(session: Session, vault: Vault, login: str) -> Account | None:
    """By ID number or mobile (both are looked up through their blind index)."""
    key = vault.index(login)
    return session.scalars(
        select(Account).where(or_(Account.id_number_index == key, Account.mobile_index == key))
    ).first()


def id_number_taken(session: Session, vault: Vault, id_number: str) -> bool:
    index = vault.index(id_number)
    return session.scalars(select(Account.id).where(Account.id_number_index == index)).first() is not None


def mobile_taken(session: Session, vault: Vault, mobile: str) -> bool:
    index = vault.index(mobile)
    return session.scalars(select(Account.id).where(Account.mobile_index == index)).first() is not None


def find_by_id_number(session: Session, vault: Vault, id_number: str) -> Account | None:
    return session.scalars(select(Account).where(Account.id_number_index == vault.index(id_number))).first()


def set_password(account: Account, password: str) -> None:
    """New hash, lock lifted, and a new session epoch: every existing session stops working."""
    account.password_hash = hash_password(password)
    account.session_epoch += 1
    account.failed_logins = 0
    account.locked_until = None


def create_account(
    session: Session,
    vault: Vault,
    *,
    name: str,
    id_number: str,
    password: str = "",
    password_hash: str | None = None,
    mobile: str | None = None,
    role: str = "student",
    confirmation_point_id: int | None = None,
) -> Account:
    index = vault.index(id_number)
    if id_number_taken(session, vault, id_number):
        raise ConflictError("an account with this ID number exists", public="该身份证号已注册")
    account = Account(
        name=name,
        role=role,
        id_number_enc=vault.encrypt(id_number),
        id_number_index=index,
        mobile_enc=vault.encrypt(mobile) if mobile else None,
        mobile_index=vault.index(mobile) if mobile else None,
        # A precomputed hash lets seeding and tests skip Argon2's deliberate cost per account.
        password_hash=password_hash or hash_password(password),
        confirmation_point_id=confirmation_point_id,
    )
    session.add(account)
    try:
        session.flush()
    except IntegrityError:
        # Lost a race with another registration of the same ID number (the unique index
        # caught it). A failed flush leaves nothing to keep: the transaction is rolled back.
        session.rollback()
        raise ConflictError("an account with this ID number exists", public="该身份证号已注册") from None
    return account
