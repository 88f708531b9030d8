"""SMS verification codes (model ``OtpCode``).

Rules, all enforced here on the server:

- a code is 6 random digits (``secrets``), stored only as a keyed hash
  (HMAC-SHA256 with ``OTP_KEY`` and a per-code salt): the table alone does not reveal it;
- valid ``OTP_TTL_SECONDS`` (10 minutes), single use, and only the newest code of a
  number and purpose counts (asking again replaces the old one);
- ``OTP_MAX_ATTEMPTS`` (5) wrong tries kill the code;
- at most one send per ``OTP_RESEND_SECONDS`` (60 s) per number and purpose, and at most
  ``OTP_DAILY_LIMIT`` (10) per number per Beijing calendar day, whatever the purpose.

Times come from the caller (the app clock), so tests can move time. Nothing here
commits: the caller commits, also after a wrong try (the try must count).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gzsb.common.beijing import BEIJING
from gzsb.errors import RateLimited, ServiceError
from gzsb.models import OtpCode

log = logging.getLogger(__name__)
PURPOSES = ("register", "reset", "appeal")
DIGITS = 6


class OtpRejected(ServiceError):
    """The code typed is wrong, expired, used or dead; the message says which (in Chinese)."""

    http_status = 422
    code = "otp_rejected"
    public_message = "验证码错误"


@dataclass(frozen=True)
class OtpPolicy:
    key: str
    ttl: timedelta = timedelta(minutes=10)
    max_attempts: int = 5
    resend_after: timedelta = timedelta(seconds=60)
    daily_limit: int = 10

    @classmethod
    def from_config(cls, config: dict) -> OtpPolicy:
        return cls(
            key=config["OTP_KEY"],
            ttl=timedelta(seconds=config.get("OTP_TTL_SECONDS", 600)),
            max_attempts=config.get("OTP_MAX_ATTEMPTS", 5),
            resend_after=timedelta(seconds=config.get("OTP_RESEND_SECONDS", 60)),
            daily_limit=config.get("OTP_DAILY_LIMIT", 10),
        )


def new_code() -> str:
    return f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"


def hash_code(key: str, purpose: str, target_index: str, code: str, salt: str | None = None) -> str:
    """``salt$hmac``: the HMAC covers purpose and number too, so a hash is useless elsewhere."""
    salt = salt if salt is not None else secrets.token_hex(8)
    message = f"{salt}|{purpose}|{target_index}|{code}".encode()
    digest = hmac.new(hashlib.sha256(key.encode()).digest(), message, hashlib.sha256).hexdigest()
    return f"{salt}${digest}"


def _matches(key: str, row: OtpCode, code: str) -> bool:
    salt, _, _ = row.code_hash.partition("$")
    return hmac.compare_digest(hash_code(key, row.purpose, row.target_index, code, salt), row.code_hash)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _start_of_beijing_day(now: datetime) -> datetime:
    local = now.astimezone(BEIJING)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def _latest(session: Session, target_index: str, purpose: str) -> OtpCode | None:
    return session.scalars(
        select(OtpCode)
        .where(OtpCode.target_index == target_index, OtpCode.purpose == purpose)
        .order_by(OtpCode.created_at.desc(), OtpCode.id.desc())
        .limit(1)
    ).first()


def check_send_allowed(session: Session, policy: OtpPolicy, target_index: str, purpose: str, now: datetime) -> None:
    """Raises RateLimited (Chinese message) if a code may not be sent now."""
    now = _utc(now)
    latest = _latest(session, target_index, purpose)
    if latest is not None:
        wait = _utc(latest.created_at) + policy.resend_after - now
        if wait > timedelta(0):
            seconds = math.ceil(wait.total_seconds())
            raise RateLimited(f"otp resend too soon ({purpose})", public=f"操作过于频繁，请{seconds}秒后再获取验证码")
    sent_today = session.scalar(
        select(func.count(OtpCode.id)).where(
            OtpCode.target_index == target_index, OtpCode.created_at >= _start_of_beijing_day(now)
        )
    )
    if sent_today >= policy.daily_limit:
        raise RateLimited("otp daily limit reached", public="该手机号今日获取验证码次数已达上限，请明天再试")


def issue(
    session: Session,
    policy: OtpPolicy,
    *,
    target_index: str,
    purpose: str,
    now: datetime,
    deliver: Callable[[str], None] | None,
) -> OtpCode:
    """Create a code for (number, purpose) and hand it to ``deliver`` (which sends the SMS).

    ``deliver=None`` creates a decoy: the same row, limits and answer, but no message.
    Account recovery uses it when the ID number and mobile do not match an account, so
    that nothing (not even the resend limit) tells a known number from an unknown one.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown OTP purpose {purpose!r}")
    now = _utc(now)
    check_send_allowed(session, policy, target_index, purpose, now)
    code = new_code()
    row = OtpCode(
        purpose=purpose,
        target_index=target_index,
        code_hash=hash_code(policy.key, purpose, target_index, code),
        created_at=now,
        expires_at=now + policy.ttl,
        attempts=0,
    )
    session.add(row)
    session.flush()
    if deliver is not None:
        deliver(code)
    return row


def verify(
    session: Session, policy: OtpPolicy, *, target_index: str, purpose: str, code: str, now: datetime
) -> OtpCode:
    """Consume the newest code of (number, purpose) if ``code`` is it; else raise OtpRejected.

    A wrong try is counted on the row: the caller must commit even when this raises.
    """
    now = _utc(now)
    row = _latest(session, target_index, purpose)
    if row is None:
        raise OtpRejected("no code issued", public="请先获取短信验证码")
    if row.used_at is not None or _utc(row.expires_at) <= now:
        raise OtpRejected("code used or expired", public="验证码已失效，请重新获取")
    if row.attempts >= policy.max_attempts:
        raise OtpRejected("code dead after too many tries", public="验证码错误次数过多，请重新获取")
    if not (code.isascii() and code.isdigit() and len(code) == DIGITS and _matches(policy.key, row, code)):
        # Counted in the database (attempts = attempts + 1 … RETURNING), so parallel guesses
        # cannot share one read of the counter and get more than max_attempts tries.
        attempts = session.execute(
            update(OtpCode)
            .where(OtpCode.id == row.id, OtpCode.attempts < policy.max_attempts)
            .values(attempts=OtpCode.attempts + 1)
            .returning(OtpCode.attempts),
            execution_options={"synchronize_session": False},
        ).scalar()
        session.expire(row, ["attempts"])
        left = policy.max_attempts - (attempts if attempts is not None else policy.max_attempts)
        if left <= 0:
            raise OtpRejected("wrong code, now dead", public="验证码错误次数过多，请重新获取")
        raise OtpRejected("wrong code", public=f"验证码错误，还可尝试{left}次")
    # Single use even under parallel submits: only one UPDATE finds it unused.
    consumed = session.execute(
        update(OtpCode)
        .where(OtpCode.id == row.id, OtpCode.used_at.is_(None), OtpCode.attempts < policy.max_attempts)
        .values(used_at=now),
        execution_options={"synchronize_session": False},
    ).rowcount
    session.expire(row, ["used_at"])
    if consumed != 1:
        raise OtpRejected("code consumed concurrently", public="验证码已失效，请重新获取")
    return row


def otp_message(template: str, code: str, policy: OtpPolicy) -> str:
    return template.format(code=code, minutes=int(policy.ttl.total_seconds() // 60))
