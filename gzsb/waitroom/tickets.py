"""Waiting-room tickets and signed admissions: plain HMAC, no Flask, no Redis.

An admission is ``<ticket>.<expires>.<signature>``: HMAC-SHA256 over ``ticket.expires``
with a key derived from the app's secret, so any node with the same secret lets the holder
straight through without asking Redis, and nobody can extend or forge one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

TICKET = re.compile(r"^[A-Za-z0-9_-]{22}$")


def new_ticket() -> str:
    return secrets.token_urlsafe(16)  # 22 characters


def valid_ticket(value: str | None) -> str | None:
    return value if value and TICKET.match(value) else None


@dataclass(frozen=True)
class Admission:
    ticket: str
    expires: int


class Signer:
    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        # Its own key: an admission is not a session cookie and must not verify as one.
        self._key = hmac.new(raw, b"gzsb waitroom admission v1", hashlib.sha256).digest()

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def sign(self, ticket: str, expires: int) -> str:
        body = f"{ticket}.{int(expires)}"
        return f"{body}.{self._mac(body)}"

    def verify(self, value: str | None, now: float) -> Admission | None:
        """The admission if the signature holds and it has not expired, else None."""
        if not value or len(value) > 100:
            return None
        body, _, mac = value.rpartition(".")
        ticket, _, expires = body.partition(".")
        if not (valid_ticket(ticket) and expires.isdigit() and hmac.compare_digest(mac, self._mac(body))):
            return None
        if int(expires) <= now:
            return None
        return Admission(ticket, int(expires))
