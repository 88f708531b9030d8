"""Login and logout. Sessions carry the account's epoch, so logging out ends them on the server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, timedelta
from functools import wraps
from typing import Any

from flask import Blueprint, g, redirect, render_template, request, session, url_for

from gzsb.accounts import check_password, find_account
from gzsb.errors import AuthRequired, Forbidden
from gzsb.extensions import db
from gzsb.models import Account
from gzsb.runtime import vault

bp = Blueprint("auth", __name__)
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


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    login_name = request.form.get("login", "").strip()
    if request.method == "POST":
        from gzsb.runtime import engine

        now = engine().clock()
        account = find_account(db.session, vault(), login_name)
        locked = account is not None and account.locked_until is not None and _aware(account.locked_until) > now
        if account is not None and not locked and check_password(account, request.form.get("password", "")):
            account.failed_logins = 0
            db.session.commit()
            session.clear()
            session["account_id"], session["epoch"] = account.id, account.session_epoch
            target = request.args.get("next", "")
            return redirect(
                target if target.startswith("/") and not target.startswith("//") else url_for("enrollment.process")
            )
        if account is not None and not locked:
            account.failed_logins += 1
            if account.failed_logins >= LOCK_AFTER:
                account.locked_until, account.failed_logins = now + LOCK_FOR, 0
            db.session.commit()
        error = "账号已被临时锁定，请15分钟后再试" if locked else "账号或密码错误"
    return render_template("login.html", error=error, login_name=login_name), (401 if error else 200)


@bp.post("/logout")
def logout() -> Any:
    account = current_account()
    if account is not None:
        account.session_epoch += 1
        db.session.commit()
    session.clear()
    return redirect(url_for("enrollment.home"))


def _aware(moment: Any) -> Any:

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
