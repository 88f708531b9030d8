"""Accounts: creation, password hashing (Argon2id), lookup by ID number or mobile,
password changes (which end every session of the account), and the failed-log-in counter."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gzsb.common.security import Vault
from gzsb.errors import ConflictError
from gzsb.models import Account

log = logging.getLogger(__name__)
# OWASP's Argon2id parameters (m=19 MiB, t=2, p=1): about 30x cheaper than the library's
# defaults (64 MiB, t=3, p=4) here, still far beyond what an offline guesser wants to pay.
# Hashes made with other parameters are re-hashed at the next successful log-in.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
_HASHER = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def check_password(account: Account, password: str) -> bool:
    """True if right; a right password over an outdated hash re-hashes it (the caller commits)."""
    try:
        _HASHER.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _HASHER.check_needs_rehash(account.password_hash):
        account.password_hash = _HASHER.hash(password)
        log.info("password hash of account %s upgraded to the current Argon2 parameters", account.id)
    return True


def reserve_login_try(
    session: Session, account_id: int, now: datetime, *, lock_after: int, lock_for: timedelta
) -> int | None:
    """Count one password try BEFORE it is checked, in one atomic UPDATE … RETURNING.

    Returns the try's number since the last success, or None when the account is locked
    (nothing counted: the caller must not check the password). The try that reaches
    ``lock_after`` sets the lock in the same statement, so parallel tries cannot all read
    "not locked" and get checked: at most ``lock_after`` passwords are checked per lock
    period, however many arrive at once. An expired lock starts the count again. Commits,
    so the row lock is not held during the (slow) password check.
    """
    expired = and_(Account.locked_until.is_not(None), Account.locked_until <= now)
    count = case((expired, 1), else_=Account.failed_logins + 1)
    number = session.execute(
        update(Account)
        .where(Account.id == account_id, or_(Account.locked_until.is_(None), Account.locked_until <= now))
        .values(
            failed_logins=count,
            locked_until=case((count >= lock_after, now + lock_for), (expired, None), else_=Account.locked_until),
        )
        .returning(Account.failed_logins),
        execution_options={"synchronize_session": False},
    ).scalar()
    session.commit()
    if number == lock_after:
        log.warning("account %d locked after %d password tries", account_id, lock_after)
    return number


def login_succeeded(session: Session, account: Account) -> None:
    """A right password: the count and any lock set by this very try are cleared (the caller commits)."""
    session.execute(
        update(Account).where(Account.id == account.id).values(failed_logins=0, locked_until=None),
        execution_options={"synchronize_session": False},
    )
    session.expire(account, ["failed_logins", "locked_until"])


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
