"""Admin commands for accounts and 确认点: `flask accounts …`, `flask points …` (and the
现场确认 slots: `flask points slots add|list|capacity`).

The acting admin recorded in the action log is ``cli:<OS user>`` unless ``--by`` says
otherwise. One-time passwords are printed once, to stdout, and never logged. Refusals go
to stderr with exit status 1.
"""

from __future__ import annotations

import getpass
import logging
import sys
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from gzsb.admin import service as admin
from gzsb.bootstrap import vault
from gzsb.common.beijing import BEIJING, as_utc
from gzsb.errors import InvalidInput, ServiceError
from gzsb.extensions import db
from gzsb.onsite import service as onsite

log = logging.getLogger(__name__)
accounts_cli = AppGroup("accounts", help="Staff, admin and auditor accounts, and the admin action log.")
points_cli = AppGroup("points", help="确认点 (confirmation points).")


def _operator(by: str | None) -> admin.Operator:
    if by:
        return admin.Operator(by)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        user = "unknown"
    return admin.Operator(f"cli:{user}")


def _now() -> datetime:
    return as_utc(current_app.extensions["gzsb.clock"]())


def _run(action: Callable[[], Any]) -> Any:
    """Run and commit; a refusal rolls back, goes to stderr and exits 1."""
    try:
        result = action()
    except ServiceError as exc:
        db.session.rollback()
        if isinstance(exc, InvalidInput):
            for field, messages in exc.fields.items():
                click.echo(f"{field}: {'；'.join(messages)}", err=True)
        else:
            click.echo(f"refused: {exc} ({exc.public_message})", err=True)
        sys.exit(1)
    db.session.commit()
    return result


by_option = click.option("--by", default=None, help="Who acts (default: cli:<OS user>).")


# -------------------------------------------------------------------------- accounts


@accounts_cli.command("create")
@click.option("--role", type=click.Choice(admin.MANAGED_ROLES), required=True)
@click.option("--id-number", required=True)
@click.option("--name", required=True)
@click.option("--mobile", required=True)
@click.option("--point", default="", help="确认点 code (staff only, required for them).")
@by_option
def accounts_create(role: str, id_number: str, name: str, mobile: str, point: str, by: str | None) -> None:
    """Create an account; print its one-time password (once)."""
    now = _now()
    account, password = _run(
        lambda: admin.create_staff_account(
            db.session,
            vault(),
            _operator(by),
            now,
            role=role,
            id_number=id_number,
            name=name,
            mobile=mobile,
            point_code=point,
            today=now.astimezone(BEIJING).date(),
        )
    )
    masked = admin.list_accounts(db.session, vault(), role)
    row = next(r for r in masked if r.id == account.id)
    click.echo(f"created {role} account {account.id} ({row.id_number})")
    click.echo(f"one-time password: {password}")
    click.echo("shown once; it must be changed at the first log-in")


@accounts_cli.command("list")
@click.option("--role", type=click.Choice(admin.MANAGED_ROLES), default=None)
def accounts_list(role: str | None) -> None:
    """Staff, admin and auditor accounts (ID numbers and mobiles masked)."""
    rows = admin.list_accounts(db.session, vault(), role)
    for row in rows:
        status = "disabled" if row.disabled else ("must-change-password" if row.must_change_password else "active")
        point = row.point.split(" ")[0] if row.point else "-"
        click.echo(f"{row.id}\t{row.role}\t{row.id_number}\t{row.mobile}\t{point}\t{status}\t{row.name}")
    click.echo(f"{len(rows)} account(s)")


def _change(id_number: str, by: str | None, change: Callable[[admin.Operator, Any], Any]) -> Any:
    def action() -> Any:
        account = admin.account_by_id_number(db.session, vault(), id_number)
        return account, change(_operator(by), account)

    return _run(action)


@accounts_cli.command("disable")
@click.argument("id_number")
@by_option
def accounts_disable(id_number: str, by: str | None) -> None:
    """Disable an account: it cannot log in, its sessions end."""
    account, _ = _change(
        id_number, by, lambda who, acc: admin.set_account_enabled(db.session, vault(), who, _now(), acc, False)
    )
    click.echo(f"account {account.id} disabled")


@accounts_cli.command("enable")
@click.argument("id_number")
@by_option
def accounts_enable(id_number: str, by: str | None) -> None:
    """Enable a disabled account again."""
    account, _ = _change(
        id_number, by, lambda who, acc: admin.set_account_enabled(db.session, vault(), who, _now(), acc, True)
    )
    click.echo(f"account {account.id} enabled")


@accounts_cli.command("reset-password")
@click.argument("id_number")
@by_option
def accounts_reset_password(id_number: str, by: str | None) -> None:
    """A new one-time password (printed once); the account's sessions end."""
    account, password = _change(
        id_number, by, lambda who, acc: admin.reset_password(db.session, vault(), who, _now(), acc)
    )
    click.echo(f"account {account.id}: one-time password: {password}")
    click.echo("shown once; it must be changed at the next log-in")


@accounts_cli.command("log")
@click.option("--limit", default=100, show_default=True)
def accounts_log(limit: int) -> None:
    """The admin action log, newest first (UTC times, personal data masked)."""
    for row in admin.actions(db.session, limit=limit):
        click.echo(admin.describe(row))


# --------------------------------------------------------------------------- points


@points_cli.command("create")
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--address", default="")
@click.option("--hours", "office_hours", default="", help="Office hours (free text).")
@by_option
def points_create(code: str, name: str, address: str, office_hours: str, by: str | None) -> None:
    """Create a 确认点."""
    point = _run(
        lambda: admin.create_point(
            db.session, _operator(by), _now(), code=code, name=name, address=address, office_hours=office_hours
        )
    )
    click.echo(f"created point {point.code}")


@points_cli.command("edit")
@click.argument("code")
@click.option("--name", default=None)
@click.option("--address", default=None)
@click.option("--hours", "office_hours", default=None)
@by_option
def points_edit(code: str, name: str | None, address: str | None, office_hours: str | None, by: str | None) -> None:
    """Change a 确认点's name, address or office hours."""

    def action() -> Any:
        point = admin.point_by_code(db.session, code)
        return admin.edit_point(
            db.session, _operator(by), _now(), point, name=name, address=address, office_hours=office_hours
        )

    click.echo(f"point {_run(action).code} saved")


@points_cli.command("list")
def points_list() -> None:
    """Every 确认点 with its staff and applications."""
    for row in admin.list_points(db.session):
        status = "disabled" if row.point.disabled_at else "active"
        click.echo(f"{row.point.code}\t{status}\tstaff={row.staff}\tapplications={row.applications}\t{row.point.name}")


def _point_change(code: str, by: str | None, verb: str, change: Callable[[admin.Operator, Any], Any]) -> None:
    _run(lambda: change(_operator(by), admin.point_by_code(db.session, code)))
    click.echo(f"point {code.strip().upper()} {verb}")


@points_cli.command("disable")
@click.argument("code")
@by_option
def points_disable(code: str, by: str | None) -> None:
    """Disable a 确认点 (it takes no new staff; its staff and applications stay)."""
    _point_change(code, by, "disabled", lambda who, p: admin.set_point_enabled(db.session, who, _now(), p, False))


@points_cli.command("enable")
@click.argument("code")
@by_option
def points_enable(code: str, by: str | None) -> None:
    """Enable a disabled 确认点 again."""
    _point_change(code, by, "enabled", lambda who, p: admin.set_point_enabled(db.session, who, _now(), p, True))


@points_cli.command("delete")
@click.argument("code")
@by_option
def points_delete(code: str, by: str | None) -> None:
    """Delete a 确认点 that has no staff and no applications (else: disable it)."""
    _point_change(code, by, "deleted", lambda who, p: admin.delete_point(db.session, who, _now(), p))


# ------------------------------------------------------------------- 现场确认 time slots

slots_cli = AppGroup("slots", help="现场确认 time slots of a 确认点 (Beijing time).")
points_cli.add_command(slots_cli)


def _parsed(parse: Callable[[str], Any], example: str) -> Callable[..., Any]:
    def callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
        try:
            return parse(value) if value else None
        except ValueError:
            raise click.BadParameter(f"write it like {example}") from None

    return callback


@slots_cli.command("add")
@click.argument("code")
@click.option("--day", required=True, callback=_parsed(date.fromisoformat, "2026-12-10"))
@click.option("--from", "first", default="09:00", show_default=True, callback=_parsed(time.fromisoformat, "09:00"))
@click.option("--to", "last", default="11:30", show_default=True, callback=_parsed(time.fromisoformat, "11:30"))
@click.option("--minutes", default=30, show_default=True, help="Length of each slot.")
@click.option("--capacity", default=20, show_default=True, help="Students per slot.")
@by_option
def slots_add(code: str, day: date, first: time, last: time, minutes: int, capacity: int, by: str | None) -> None:
    """Open slots of MINUTES from --from to --to on --day, CAPACITY students each."""

    def action() -> Any:
        point = admin.point_by_code(db.session, code)
        return onsite.add_slots(
            db.session,
            _operator(by),
            _now(),
            point,
            day=day,
            first=first,
            last=last,
            minutes=minutes,
            capacity=capacity,
        )

    click.echo(f"{len(_run(action))} slot(s) added")


@slots_cli.command("list")
@click.argument("code")
@click.option("--day", default=None, callback=_parsed(date.fromisoformat, "2026-12-10"), help="One Beijing day.")
def slots_list(code: str, day: date | None) -> None:
    """The point's slots from today (or of one day): id, time, booked/capacity."""
    point = admin.point_by_code(db.session, code)
    if day is None:
        since = datetime.combine(_now().astimezone(BEIJING).date(), time(0), tzinfo=BEIJING)
        rows = onsite.point_slots(db.session, point.id, since)
    else:
        rows = onsite.point_slots(db.session, point.id, *onsite.beijing_day_bounds(day))
    for row in rows:
        click.echo(f"{row.slot.id}\t{row.text}\t{row.slot.booked}/{row.slot.capacity}")


@slots_cli.command("capacity")
@click.argument("code")
@click.argument("slot_id", type=int)
@click.argument("capacity", type=int)
@by_option
def slots_capacity(code: str, slot_id: int, capacity: int, by: str | None) -> None:
    """Set one slot's capacity (never below its bookings)."""

    def action() -> Any:
        point = admin.point_by_code(db.session, code)
        onsite.set_capacity(
            db.session, _operator(by), _now(), onsite.slot_of_point(db.session, point, slot_id), capacity
        )

    _run(action)
    click.echo(f"slot {slot_id}: capacity {capacity}")


groups = (accounts_cli, points_cli)
