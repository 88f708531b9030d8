"""What happens around logging in, outside the log-in route: the home page of each role,
the first-log-in password change, and no way in for disabled accounts.

A ``before_app_request`` hook, so the log-in route itself stays as it is:

- an account created (or reset) by an admin has a one-time password and
  ``must_change_password``; until it picks its own password, every page sends it to
  ``/account/password`` (JSON answers 403);
- a disabled account is refused at ``POST /login`` when its password is right (a wrong
  password goes on to the log-in route, which counts it as usual), and a session of an
  account disabled meanwhile is ended (disabling bumps its epoch too).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from sqlalchemy import update

from gzsb.accounts.forms import login_name, password_rules
from gzsb.accounts.passwords import password_problems
from gzsb.accounts.service import check_password, find_account, set_password
from gzsb.accounts.session import LOCK_AFTER, LOCK_FOR, current_account, login_required, start_session
from gzsb.bootstrap import vault
from gzsb.common.beijing import as_utc
from gzsb.errors import Forbidden
from gzsb.extensions import db
from gzsb.models import Account

log = logging.getLogger(__name__)
bp = Blueprint("first_login", __name__)

DISABLED = "该账号已停用，如有疑问请联系管理员"
MUST_CHANGE = "请先修改初始密码"
# Pages an account that must change its password may still open.
OPEN_ENDPOINTS = {"static", "first_login.change_password", "auth.logout", "auth.login"}


# Wrong current passwords on the change page before the account is locked and logged out.
def _session_account() -> Account | None:
    # This hook runs before app.py's _fresh_g: a cached account may be another request's.
    g.pop("account", None)
    return current_account()


def home_for(account: Account) -> str:
    """Where an account goes after logging in (the one role → home mapping)."""
    if account.must_change_password:
        return url_for("first_login.change_password")
    if account.role == "staff":
        return url_for("staff.dashboard")
    if account.role == "admin":
        return url_for("admin.home")
    if account.role == "auditor":
        return url_for("audit.home")
    return url_for("enrollment.process")


def _refuse_disabled_login() -> Any:
    account = find_account(db.session, vault(), login_name())
    if account is None or account.disabled_at is None:
        return None
    locked = account.locked_until is not None and as_utc(account.locked_until) > current_app.extensions["gzsb.clock"]()
    # Only a right password learns that the account is disabled; anything else is the route's.
    if locked or not check_password(account, request.form.get("password", "")):
        return None
    log.info("log-in refused: account %d is disabled", account.id)
    return render_template("login.html", error=DISABLED, login_name=login_name()), 403


@bp.before_app_request
def gate() -> Any:
    if request.endpoint == "auth.login" and request.method == "POST":
        return _refuse_disabled_login()
    if "account_id" not in session:
        return None
    account = _session_account()
    if account is None:
        return None
    if account.disabled_at is not None:
        session.clear()
        g.pop("account", None)
        return redirect(url_for("auth.login"))
    if account.must_change_password and request.endpoint not in OPEN_ENDPOINTS:
        if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
            raise Forbidden("password change pending", public=MUST_CHANGE)
        return redirect(url_for("first_login.change_password"))
    return None


def _render(errors: dict[str, list[str]], status: int = 200) -> Any:
    return render_template("admin/change_password.html", errors=errors, password_rules=password_rules()), status


def _count_failure(account: Account) -> bool:
    """One more wrong current password (atomic); True when the account is now locked out."""
    db.session.execute(update(Account).where(Account.id == account.id).values(failed_logins=Account.failed_logins + 1))
    db.session.refresh(account)
    if account.failed_logins < LOCK_AFTER:
        db.session.commit()
        return False
    now = as_utc(current_app.extensions["gzsb.clock"]())
    account.locked_until, account.failed_logins = now + LOCK_FOR, 0
    account.session_epoch = Account.session_epoch + 1
    db.session.commit()
    log.warning("account %d locked after %d wrong passwords on the change page", account.id, LOCK_AFTER)
    return True


@bp.route("/account/password", methods=["GET", "POST"])
def change_password() -> Any:
    @login_required()
    def view() -> Any:
        account = current_account()
        assert account is not None
        if request.method == "GET":
            return _render({})
        errors: dict[str, list[str]] = {}
        current = request.form.get("current_password", "")
        new = request.form.get("password", "")
        if not current or not check_password(account, current):
            if _count_failure(account):
                session.clear()
                return redirect(url_for("auth.login"))
            return _render({"current_password": ["当前密码不正确"]}, 422)
        id_number = vault().decrypt(account.id_number_enc)
        mobile = vault().decrypt(account.mobile_enc) if account.mobile_enc else None
        problems = password_problems(new, id_number=id_number, mobile=mobile)
        if new and new == current:
            problems.append("新密码不能与当前密码相同")
        if problems:
            errors["password"] = problems
        if new and request.form.get("password2", "") != new:
            errors["password2"] = ["两次输入的密码不一致"]
        if errors:
            return _render(errors, 422)
        set_password(account, new)  # a new epoch: every other session of the account ends
        account.must_change_password = False
        db.session.commit()
        start_session(account)  # this one goes on under the new epoch
        log.info("account %d chose its own password", account.id)
        return redirect(home_for(account))

    return view()
