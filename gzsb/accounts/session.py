"""Who is logged in: the session cookie holds the account id and its epoch.

Logging out or changing the password bumps the account's epoch, so an old cookie no longer
works (the session ends on the server, not only in the browser). The session also records
its last activity: after ``SESSION_IDLE_MINUTES`` without a request (``SESSION_IDLE_MINUTES_STAFF``
for staff, admins and auditors) it ends, measured on the app clock.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import current_app, g, redirect, request, session, url_for
from sqlalchemy.orm import Session

from gzsb.errors import AuthRequired, Forbidden
from gzsb.extensions import db
from gzsb.models import Account

log = logging.getLogger(__name__)


# Wrong passwords (log-in or the first-log-in change page) before an account is locked, and for how long.
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)


def _now() -> datetime:
    return current_app.extensions["gzsb.clock"]()


# The last-activity time is written at most this often (seconds): the idle timeout is
# accurate to it, and a page within it neither re-signs nor re-sends the session cookie.
SEEN_STEP = 30


def idle_limit(role: str) -> timedelta:
    key = "SESSION_IDLE_MINUTES" if role == "student" else "SESSION_IDLE_MINUTES_STAFF"
    return timedelta(minutes=current_app.config[key])


def _idle_too_long(account: Account, now: datetime) -> bool:
    seen = session.get("seen")
    # A session without a last-activity time predates the timeout: it ends too.
    return not isinstance(seen, (int, float)) or now.timestamp() - seen > idle_limit(account.role).total_seconds()


# A view's own way of loading the logged-in account (see ``account_loader``).
AccountLoader = Callable[[Session, int], "Account | None"]


def account_loader(loader: AccountLoader) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Let the log-in gate load the account with ``loader`` on this view, so that the one
    query every request makes also brings what the view shows (one round trip, not several).
    Put it under ``login_required``: ``functools.wraps`` carries the mark to the route."""

    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        view.account_loader = loader  # type: ignore[attr-defined]
        return view

    return mark


def _load_account(account_id: int) -> Account | None:
    view = current_app.view_functions.get(request.endpoint or "")
    loader: AccountLoader | None = getattr(view, "account_loader", None)
    return db.session.get(Account, account_id) if loader is None else loader(db.session, account_id)


def current_account() -> Account | None:
    if "account" not in g:
        account = None
        account_id = session.get("account_id")
        if account_id is not None:
            now = _now()
            account = _load_account(account_id)
            if account is not None and account.session_epoch != session.get("epoch"):
                account = None
            elif account is not None and _idle_too_long(account, now):
                log.info("session of account %d ended after %s idle", account.id, idle_limit(account.role))
                session.clear()
                account = None
            elif account is not None and now.timestamp() - session.get("seen", 0) >= SEEN_STEP:
                # Not on every request: a changed session is a re-signed Set-Cookie per page.
                session["seen"] = int(now.timestamp())
        g.account = account
    return g.account


def safe_next(target: str) -> str | None:
    """``target`` if it is a path on this site, else None (where to go after logging in).

    Browsers drop tabs and newlines inside URLs and read ``\\`` as ``/``, so ``/\t/evil`` or
    ``/\\evil`` would leave the site: only a single leading ``/``, no backslash, no control,
    space or format character, no scheme or host, also once percent-decoding is undone.
    """
    if not target or len(target) > 2000:
        return None
    decoded = target
    for _ in range(3):
        decoded = unquote(decoded)
    for text in (target, decoded):
        if not text.startswith("/") or text.startswith("//") or "\\" in text:
            return None
        if any(unicodedata.category(c)[0] in "CZ" for c in text):
            return None
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            return None
    return target


def login_required(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            account = current_account()
            if account is None:
                if request.path.startswith("/api/"):
                    raise AuthRequired("not logged in")
                return redirect(url_for("auth.login", next=request.path))
            if roles and account.role not in roles:
                raise Forbidden(f"role {account.role!r} may not open {request.path}")
            return view(*args, **kwargs)

        return wrapped

    return decorate


def start_session(account: Account) -> None:
    session.clear()
    session["account_id"], session["epoch"] = account.id, account.session_epoch
    session["seen"] = int(_now().timestamp())
    g.account = account
