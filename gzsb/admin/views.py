"""The admin pages (/admin): home, accounts, 确认点, the action log.

Thin: every change goes through ``gzsb.admin.service`` and is committed here. A one-time
password is rendered into the answer to the request that made it (never flashed: the flash
would keep it in the session cookie) with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, flash, make_response, redirect, render_template, request, url_for

from gzsb.accounts.session import current_account, login_required
from gzsb.admin import service as admin
from gzsb.bootstrap import vault
from gzsb.common.beijing import BEIJING, as_utc
from gzsb.common.templates import template_globals
from gzsb.errors import ConflictError, InvalidInput, ServiceError
from gzsb.extensions import db

log = logging.getLogger(__name__)
bp = Blueprint("admin", __name__, url_prefix="/admin")
# How the action log names what admins did (display only).
ACTION_LABELS = {
    "create_account": "创建账号",
    "disable_account": "停用账号",
    "enable_account": "启用账号",
    "reset_password": "重置密码",
    "create_point": "新增确认点",
    "edit_point": "修改确认点",
    "disable_point": "停用确认点",
    "enable_point": "启用确认点",
    "delete_point": "删除确认点",
    "propose_flow": "提交流程修改",
    "approve_flow": "批准流程修改",
    "reject_flow": "驳回流程修改",
    "publish_flow": "发布流程版本",
    "migrate_flow": "迁移在办申请",
}

ACCOUNT_FIELDS = ("role", "id_number", "name", "mobile", "point")
POINT_FIELDS = ("code", "name", "address", "office_hours")
POINT_VERBS = {"delete": "删除", "enable": "启用", "disable": "停用"}


def _now() -> datetime:
    return as_utc(current_app.extensions["gzsb.clock"]())


def _me() -> admin.Operator:
    account = current_account()
    assert account is not None  # guarded by login_required
    return admin.Operator.of(account)


def _form(fields: tuple[str, ...]) -> dict[str, str]:
    return {name: request.form.get(name, "") for name in fields}


def _errors(exc: ServiceError) -> dict[str, list[str]]:
    if isinstance(exc, InvalidInput):
        return {k: list(v) for k, v in exc.fields.items()}
    return {"_form": [exc.public_message]}


template_globals(bp, role_labels=admin.ROLE_LABELS, action_labels=ACTION_LABELS)


@bp.app_template_filter("beijing_time")
def beijing_time(moment: datetime) -> str:
    return as_utc(moment).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------------------ home


@bp.get("/")
@login_required("admin")
def home() -> Any:
    points = admin.list_points(db.session)
    return render_template(
        "admin/home.html",
        counts=admin.role_counts(db.session),
        points=len(points),
        active_points=sum(1 for row in points if row.point.disabled_at is None),
        recent=admin.actions(db.session, limit=10),
    )


# -------------------------------------------------------------------------- accounts


def _accounts_page(
    *, values: dict[str, str] | None = None, errors: dict[str, list[str]] | None = None, secret: Any = None
) -> Any:
    role = request.args.get("role", "")
    role = role if role in admin.MANAGED_ROLES else ""
    page = render_template(
        "admin/accounts.html",
        rows=admin.list_accounts(db.session, vault(), role or None),
        role=role,
        points=[row.point for row in admin.list_points(db.session) if row.point.disabled_at is None],
        values=values or {},
        errors=errors or {},
        secret=secret,
    )
    response = make_response(page, 422 if errors else 200)
    if secret is not None:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/accounts")
@login_required("admin")
def accounts() -> Any:
    return _accounts_page()


@bp.post("/accounts")
@login_required("admin")
def create_account() -> Any:
    values = _form(ACCOUNT_FIELDS)
    now = _now()
    try:
        account, password = admin.create_staff_account(
            db.session,
            vault(),
            _me(),
            now,
            role=values["role"],
            id_number=values["id_number"],
            name=values["name"],
            mobile=values["mobile"],
            point_code=values["point"],
            today=now.astimezone(BEIJING).date(),
        )
    except (InvalidInput, ConflictError) as exc:
        db.session.rollback()
        return _accounts_page(values=values, errors=_errors(exc))
    db.session.commit()
    return _accounts_page(secret={"name": account.name, "password": password, "created": True})


def _change(account_id: int, action: str) -> Any:
    account = admin.managed_account(db.session, account_id)
    try:
        if action == "reset":
            password = admin.reset_password(db.session, vault(), _me(), _now(), account)
            db.session.commit()
            return _accounts_page(secret={"name": account.name, "password": password, "created": False})
        admin.set_account_enabled(db.session, vault(), _me(), _now(), account, action == "enable")
    except ConflictError as exc:
        db.session.rollback()
        return _accounts_page(errors={"_list": [exc.public_message]})
    db.session.commit()
    flash(f"已{'启用' if action == 'enable' else '停用'}账号：{account.name}")
    return redirect(url_for("admin.accounts", role=request.args.get("role") or None))


@bp.post("/accounts/<int:account_id>/disable")
@login_required("admin")
def disable_account(account_id: int) -> Any:
    return _change(account_id, "disable")


@bp.post("/accounts/<int:account_id>/enable")
@login_required("admin")
def enable_account(account_id: int) -> Any:
    return _change(account_id, "enable")


@bp.post("/accounts/<int:account_id>/reset-password")
@login_required("admin")
def reset_password(account_id: int) -> Any:
    return _change(account_id, "reset")


# ---------------------------------------------------------------------------- 确认点


def _points_page(values: dict[str, str] | None = None, errors: dict[str, list[str]] | None = None) -> Any:
    return render_template(
        "admin/points.html", rows=admin.list_points(db.session), values=values or {}, errors=errors or {}
    ), (422 if errors else 200)


@bp.get("/points")
@login_required("admin")
def points() -> Any:
    return _points_page()


@bp.post("/points")
@login_required("admin")
def create_point() -> Any:
    values = _form(POINT_FIELDS)
    try:
        point = admin.create_point(db.session, _me(), _now(), **values)
    except (InvalidInput, ConflictError) as exc:
        db.session.rollback()
        return _points_page(values, _errors(exc))
    db.session.commit()
    flash(f"已新增确认点：{point.code} {point.name}")
    return redirect(url_for("admin.points"))


@bp.route("/points/<int:point_id>", methods=["GET", "POST"])
@login_required("admin")
def edit_point(point_id: int) -> Any:
    point = admin.point_by_id(db.session, point_id)
    if request.method == "GET":
        values = {name: getattr(point, name) for name in POINT_FIELDS}
        return render_template("admin/point_edit.html", point=point, values=values, errors={})
    values = _form(POINT_FIELDS[1:])
    try:
        admin.edit_point(db.session, _me(), _now(), point, **values)
    except InvalidInput as exc:
        db.session.rollback()
        return render_template("admin/point_edit.html", point=point, values=values, errors=_errors(exc)), 422
    db.session.commit()
    flash(f"已保存确认点：{point.code}")
    return redirect(url_for("admin.points"))


def _point_change(point_id: int, action: str) -> Any:
    point = admin.point_by_id(db.session, point_id)
    code = point.code
    try:
        if action == "delete":
            admin.delete_point(db.session, _me(), _now(), point)
        else:
            admin.set_point_enabled(db.session, _me(), _now(), point, action == "enable")
    except ConflictError as exc:
        db.session.rollback()
        return _points_page(errors={"_list": [exc.public_message]})
    db.session.commit()
    flash(f"已{POINT_VERBS[action]}确认点：{code}")
    return redirect(url_for("admin.points"))


@bp.post("/points/<int:point_id>/disable")
@login_required("admin")
def disable_point(point_id: int) -> Any:
    return _point_change(point_id, "disable")


@bp.post("/points/<int:point_id>/enable")
@login_required("admin")
def enable_point(point_id: int) -> Any:
    return _point_change(point_id, "enable")


@bp.post("/points/<int:point_id>/delete")
@login_required("admin")
def delete_point(point_id: int) -> Any:
    return _point_change(point_id, "delete")


# ------------------------------------------------------------------------------- log


@bp.get("/log")
@login_required("admin")
def action_log() -> Any:
    return render_template("admin/log.html", rows=admin.actions(db.session, limit=500))
