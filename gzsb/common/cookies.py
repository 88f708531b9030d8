"""Flask's signed-cookie sessions, without verifying the same cookie again on every request.

A browser sends the same session cookie with every request until the session changes (the
last-activity time is re-signed at most every ``SEEN_STEP`` seconds). Verifying it means
deriving the HMAC key, checking the signature and decoding base64 and tagged JSON: a sixth
of an anonymous request's CPU. A cookie that verified once is remembered, with its payload
and signing time, in a bounded per-process map keyed by the exact cookie text and the keys
it was checked with; a later request with the same text gets a fresh copy of that payload,
after the same age check as before. Only payloads of plain scalars are remembered, so no
request can change another's through a shared list or dict; anything else takes the full path.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature

MAX_ENTRIES = 20_000
_SCALARS = (str, int, float, bool, type(None))


class VerifiedCookieSessions(SecureCookieSessionInterface):
    def __init__(self) -> None:
        # (cookie text, signing keys) → (payload, signed at, as a Unix time).
        self._verified: dict[tuple[str, tuple[Any, ...]], tuple[dict[str, Any], float]] = {}

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not app.secret_key:
            return None
        text = request.cookies.get(self.get_cookie_name(app))
        if not text:
            return self.session_class()
        max_age = app.permanent_session_lifetime.total_seconds()
        key = (text, (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ())))
        hit = self._verified.get(key)
        if hit is not None and time.time() - hit[1] <= max_age:
            return self.session_class(hit[0])  # a copy: scalars only, nothing shared
        serializer = self.get_signing_serializer(app)
        assert serializer is not None  # there is a secret key
        try:
            data, signed_at = serializer.loads(text, max_age=int(max_age), return_timestamp=True)
        except BadSignature:
            return self.session_class()
        if isinstance(data, dict) and all(isinstance(v, _SCALARS) for v in data.values()):
            if len(self._verified) >= MAX_ENTRIES:
                self._verified.clear()  # re-verifying is cheap; an unbounded map is not
            self._verified[key] = (dict(data), signed_at.timestamp())
        return self.session_class(data)
