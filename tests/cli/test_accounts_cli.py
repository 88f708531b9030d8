"""`flask accounts …` and `flask points …`: the same service as the admin pages."""

from __future__ import annotations

import getpass
import re

from sqlalchemy import select

from gzsb.accounts.service import check_password
from gzsb.extensions import db
from gzsb.models import Account, AdminAction, ConfirmationPoint
from tests.admin.support import person

OTP_LINE = re.compile(r"one-time password: (\S+)")


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def test_create_list_disable_enable_reset_and_log(app) -> None:
    who = person("赵老师")
    result = run(
        app, "accounts", "create", "--role", "staff", "--id-number", who.id_number, "--name", who.name,
        "--mobile", who.mobile, "--point", "NK01",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    password = OTP_LINE.search(result.stdout).group(1)
    assert result.stdout.count(password) == 1 and who.id_number not in result.stdout
    account = db.session.scalars(select(Account).where(Account.role == "staff")).one()
    assert check_password(account, password) and account.must_change_password
    assert account.confirmation_point.code == "NK01"

    listed = run(app, "accounts", "list", "--role", "staff")
    assert listed.exit_code == 0 and who.id_number[-4:] in listed.stdout
    assert who.id_number not in listed.stdout and who.mobile not in listed.stdout and password not in listed.stdout

    epoch = account.session_epoch
    assert run(app, "accounts", "disable", who.id_number, "--by", "ops:li").exit_code == 0
    db.session.refresh(account)
    assert account.disabled_at is not None and account.session_epoch == epoch + 1
    assert "disabled" in run(app, "accounts", "list").stdout
    assert run(app, "accounts", "enable", who.id_number).exit_code == 0
    reset = run(app, "accounts", "reset-password", who.id_number)
    assert reset.exit_code == 0
    second = OTP_LINE.search(reset.stdout).group(1)
    db.session.refresh(account)
    assert second != password and check_password(account, second)

    log = run(app, "accounts", "log")
    assert log.exit_code == 0 and password not in log.stdout and second not in log.stdout
    assert who.id_number not in log.stdout and who.mobile not in log.stdout
    lines = log.stdout.splitlines()
    assert [line.split()[2] for line in lines] == [
        "reset_password",
        "enable_account",
        "disable_account",
        "create_account",
    ]
    assert lines[2].split()[1] == "ops:li" and lines[0].split()[1] == f"cli:{getpass.getuser()}"


def test_refusals_exit_1_and_change_nothing(app) -> None:
    who = person()
    base = ["accounts", "create", "--id-number", who.id_number, "--name", who.name, "--mobile", who.mobile]
    no_point = run(app, *base, "--role", "staff")
    assert no_point.exit_code == 1 and "point" in no_point.stderr
    assert run(app, *base, "--role", "admin").exit_code == 0
    again = run(app, *base, "--role", "auditor")
    assert again.exit_code == 1 and "该身份证号已注册" in again.stderr
    last = run(app, "accounts", "disable", who.id_number)
    assert last.exit_code == 1 and "last active admin" in last.stderr
    assert run(app, "accounts", "disable", person().id_number).exit_code == 1  # no such account
    assert db.session.scalar(select(db.func.count()).select_from(AdminAction)) == 1


def test_points_commands(app) -> None:
    created = run(app, "points", "create", "--code", "hp01", "--name", "和平区招生考试中心", "--hours", "工作日")
    assert created.exit_code == 0, created.stderr
    assert run(app, "points", "create", "--code", "HP01", "--name", "重复").exit_code == 1
    assert run(app, "points", "edit", "HP01", "--address", "和平区南京路1号").exit_code == 0
    listing = run(app, "points", "list").stdout
    assert "HP01\tactive" in listing and "NK01\tactive" in listing
    who = person()
    staff = ["--id-number", who.id_number, "--name", who.name, "--mobile", who.mobile, "--point", "HP01"]
    assert run(app, "accounts", "create", "--role", "staff", *staff).exit_code == 0
    refused = run(app, "points", "delete", "HP01")
    assert refused.exit_code == 1 and "只能停用" in refused.stderr
    assert run(app, "points", "disable", "HP01").exit_code == 0
    assert run(app, "points", "delete", "HX01").exit_code == 0
    points = {p.code: p for p in db.session.scalars(select(ConfirmationPoint))}
    assert set(points) == {"NK01", "HP01"} and points["HP01"].disabled_at is not None
    assert points["HP01"].address == "和平区南京路1号" and points["HP01"].office_hours == "工作日"
    actions = [line.split()[2] for line in run(app, "accounts", "log").stdout.splitlines()]
    assert actions == ["delete_point", "disable_point", "create_account", "edit_point", "create_point"]
