"""The CSRF token the pages embed, signed once per session token rather than once per page.

Flask-WTF signs the session's raw token with a timestamp on every request that renders a
form (every page, for the 退出 form): an HMAC key derivation, JSON and base64 each time,
about a tenth of a 流程页面's CPU. With ``WTF_CSRF_TIME_LIMIT = None`` the timestamp is never
checked, so a token signed earlier for the same raw token is exactly as valid: it is reused
from a bounded per-process map. With a time limit set, a signed token is reused only for a
small part of it.
"""

from __future__ import annotations

import time

from flask import current_app, g, session
from flask_wtf.csrf import generate_csrf

# Raw session token → (signed token, when signed). Cleared when full (a new signature is cheap).
_SIGNED: dict[str, tuple[str, float]] = {}
MAX_ENTRIES = 20_000


def _reuse_seconds() -> float:
    limit = current_app.config.get("WTF_CSRF_TIME_LIMIT")
    return float("inf") if limit is None else float(limit) / 10


def csrf_token() -> str:
    """``generate_csrf()``, reusing this session token's earlier signature (template global)."""
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    if field in g:
        return str(g.get(field))
    raw = session.get(field)
    hit = _SIGNED.get(raw) if isinstance(raw, str) else None
    if hit is not None and time.monotonic() - hit[1] < _reuse_seconds():
        setattr(g, field, hit[0])  # what generate_csrf() and the form checks read
        return hit[0]
    token = generate_csrf()
    raw = session.get(field)
    if isinstance(raw, str):
        if len(_SIGNED) >= MAX_ENTRIES:
            _SIGNED.clear()
        _SIGNED[raw] = (token, time.monotonic())
    return token
