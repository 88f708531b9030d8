"""Rate limits of the account pages, shared by every app node (Flask-Limiter on Redis).

Two kinds, both counted in Flask-Limiter's storage (``RATELIMIT_STORAGE_URI``: Redis in a
deployment so that N nodes and their workers share one budget; ``memory://`` only for the
embedded single-process default):

- a request ceiling per client IP on the account POSTs (``AUTH_POSTS_PER_IP``), checked by
  Flask-Limiter before the view runs;
- failure budgets: wrong passwords, wrong codes, misses. Each is counted against the key the
  client typed (login name, mobile, ID number; stored as a keyed hash) with a small budget,
  and against the client IP with a generous one. So spraying one account is stopped by the
  account's budget, and hundreds of students behind one school NAT do not lock each other
  out; only an IP that fails far more than a school would is paused as a whole.

The per-account lock (wrong passwords, ``reserve_login_try``) and the per-number SMS rules
(``otp``) stay in the database; these limits come on top of them.

The client IP is ``request.remote_addr``: behind ``PROXY_COUNT`` trusted proxies the app's
ProxyFix sets it from X-Forwarded-For (with 0, the header is ignored: a client could forge it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import unicodedata

from flask import Flask, current_app, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse
from limits.strategies import RateLimiter

from gzsb.errors import RateLimited

log = logging.getLogger(__name__)

TOO_MANY = "操作过于频繁，请稍后再试"
# The account pages that take a POST and may be hammered.
AUTH_ENDPOINTS = (
    "auth.login",
    "auth.register",
    "auth.register_code",
    "auth.recover_password",
    "auth.recover_password_code",
    "auth.recover_username",
)


def client() -> str:
    return request.remote_addr or "unknown"


def init_limits(app: Flask) -> Limiter:
    """One Limiter per app (its storage from the config), with the IP ceiling on the account POSTs."""
    limiter = Limiter(client, app=app)
    ceiling = limiter.shared_limit(
        lambda: current_app.config["AUTH_POSTS_PER_IP"], scope="auth-posts", methods=["POST"]
    )
    for endpoint in AUTH_ENDPOINTS:
        view = app.view_functions.get(endpoint)
        if view is not None:  # this app's own wrapper: another app on the same views keeps its limiter
            app.view_functions[endpoint] = ceiling(view)
    # The decorated views check their limits in their own wrapper; the before-request hook
    # would only apply default or application-wide limits, and there are none: it is a
    # fixed cost on every request (≈ 0.3 ms) that limits nothing, so it is taken out.
    if not (limiter.limit_manager._default_limits or limiter.limit_manager._application_limits):
        app.before_request_funcs[None].remove(limiter._check_request_limit)
    app.extensions["gzsb.limiter"] = limiter
    return limiter


def _strategy() -> RateLimiter:
    return current_app.extensions["gzsb.limiter"].limiter


def _limit(name: str) -> RateLimitItem:
    return parse(current_app.config[name])


def _key(who: str) -> str:
    """A keyed hash of what the client typed: no ID numbers or mobiles in Redis, and the same
    account whatever width or case its digits were typed in."""
    text = unicodedata.normalize("NFKC", who or "").strip().upper()
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:32]


def _ids(*parts: str) -> tuple[str, ...]:
    # Flask-Limiter prefixes only its own route limits; ours get the same prefix here.
    return (str(current_app.config["RATELIMIT_KEY_PREFIX"]), *parts)


def _budgets(bucket: str, who: str) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
    return [
        (_limit("FAILURES_PER_ACCOUNT"), _ids(bucket, "who", _key(who))),
        (_limit("FAILURES_PER_IP"), _ids(bucket, "ip", client())),
    ]


def _storage_failed(what: str) -> None:
    # The limiter's store (Redis) is down: the account pages keep working, limited by the
    # database's per-account lock and per-number SMS rules only, and we say so loudly.
    log.error("rate-limit storage unavailable (%s): not limiting", what, exc_info=True)


def blocked(bucket: str, who: str) -> bool:
    """True when this account key, or this client IP, has used up its failures of ``bucket``."""
    strategy = _strategy()
    try:
        return not all(strategy.test(item, *ids) for item, ids in _budgets(bucket, who))
    except Exception:  # noqa: BLE001 - any storage error (redis.ConnectionError, timeouts)
        _storage_failed(f"{bucket} check")
        return False


def failure(bucket: str, who: str) -> None:
    """Count one failure of ``bucket`` against the account key and the client IP."""
    strategy = _strategy()
    try:
        for item, ids in _budgets(bucket, who):
            if not strategy.hit(item, *ids):
                log.warning("%s paused by %s failures (%s)", ids[2], bucket, item)
    except Exception:  # noqa: BLE001
        _storage_failed(f"{bucket} failure")


def pause_minutes() -> int:
    """How long a paused key waits at most: the account budget's window, in minutes."""
    return max(1, _limit("FAILURES_PER_ACCOUNT").get_expiry() // 60)


def sms_allowed(mobile: str) -> None:
    """Codes per mobile number and per client IP (SMS pumping); raises RateLimited (429)."""
    strategy = _strategy()
    budgets = [
        (_limit("SMS_PER_MOBILE"), ("sms", "who", _key(mobile))),
        (_limit("SMS_PER_IP"), ("sms", "ip", client())),
    ]
    try:
        allowed = all(strategy.test(item, *ids) for item, ids in budgets)
        if allowed:
            for item, ids in budgets:
                strategy.hit(item, *ids)
    except Exception:  # noqa: BLE001
        _storage_failed("sms")
        return
    if not allowed:
        raise RateLimited("too many SMS for this number or client", public=TOO_MANY)
