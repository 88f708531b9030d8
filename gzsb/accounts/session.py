"""Who is logged in: the session cookie holds the account id and its epoch.

Logging out or changing the password bumps the account's epoch, so an old cookie no longer
works (the session ends on the server, not only in the browser).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import g, redirect, request, session, url_for

from gzsb.errors import AuthRequired, Forbidden
from gzsb.extensions import db
from gzsb.models import Account

log = logging.getLogger(__name__)


# Wrong passwords (log-in or the first-log-in change page) before an account is locked, and for how long.
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)


def current_account() -> Account | None:
    if "account" not in g:
        account = None
        account_id = session.get("account_id")
        if account_id is not None:
            account = db.session.get(Account, account_id)
            if account is not None and account.session_epoch != session.get("epoch"):
                account = None
        g.account = account
    return g.account


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
    g.account = account
