"""The admin service: accounts of every managed role, 确认点, and the action log."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select

from gzsb.accounts.service import check_password
from gzsb.admin import service as admin
from gzsb.bootstrap import vault
from gzsb.errors import ConflictError, InvalidInput, NotFound
from gzsb.extensions import db
from gzsb.models import Account, AdminAction
from tests.admin.support import BY, NOW, TODAY, Person, add_account, person


def create(role: str, point: str = "", who=None, by=BY):
    who = who or person()
    account, password = admin.create_staff_account(
        db.session,
        vault(),
        by,
        NOW,
        role=role,
        id_number=who.id_number,
        name=who.name,
        mobile=who.mobile,
        point_code=point,
        today=TODAY,
    )
    db.session.commit()
    return account, password, who


def all_actions() -> list[AdminAction]:
    return list(db.session.scalars(select(AdminAction).order_by(AdminAction.id)))


@pytest.mark.parametrize(("role", "point"), [("staff", "NK01"), ("admin", ""), ("auditor", "")])
def test_create_each_role_with_a_one_time_password(app, role, point, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    account, password, who = create(role, point)
    assert account.role == role and account.must_change_password
    assert (account.confirmation_point.code if account.confirmation_point else "") == point
    assert check_password(account, password) and password not in account.password_hash
    # Stored like students' personal data: encrypted, found through the blind index.
    assert who.id_number.encode() not in account.id_number_enc
    assert vault().decrypt(account.id_number_enc) == who.id_number
    assert account.id_number_index == vault().index(who.id_number)
    assert password not in caplog.text and who.id_number not in caplog.text
    [row] = all_actions()
    assert (row.actor, row.action, row.target) == ("test:admin", "create_account", f"account:{account.id}")
    text = json.dumps(row.details, ensure_ascii=False)
    assert row.details["role"] == role
    assert row.details["id_number"] == who.id_number[:6] + "********" + who.id_number[-4:]
    for secret in (who.id_number, who.mobile, who.name, password):
        assert secret not in text


def test_one_time_passwords_differ_and_follow_the_password_rules(app) -> None:
    from gzsb.accounts.passwords import password_problems

    seen = {admin.one_time_password() for _ in range(50)}
    assert len(seen) == 50
    assert all(not password_problems(p) and len(p) == admin.OTP_LENGTH for p in seen)


def test_staff_need_exactly_one_active_point(app) -> None:
    with pytest.raises(InvalidInput) as refused:
        create("staff", "")
    assert "point" in refused.value.fields
    with pytest.raises(InvalidInput) as refused:
        create("admin", "NK01")
    assert "point" in refused.value.fields
    with pytest.raises(NotFound):
        create("staff", "XX99")
    admin.set_point_enabled(db.session, BY, NOW, admin.point_by_code(db.session, "HX01"), False)
    db.session.commit()
    with pytest.raises(InvalidInput):
        create("staff", "HX01")
    assert db.session.scalar(select(db.func.count()).select_from(Account)) == 0
    assert [a.action for a in all_actions()] == ["disable_point"]


def test_duplicates_and_bad_input_are_refused(app) -> None:
    _, _, who = create("auditor")
    with pytest.raises(ConflictError):
        create("admin", who=Person(who.id_number, "13912345678", "李老师"))
    with pytest.raises(ConflictError):
        create("admin", who=Person(person().id_number, who.mobile, "李老师"))
    good = person()
    with pytest.raises(InvalidInput) as refused:
        wrong_check = good.id_number[:-1] + ("0" if good.id_number[-1] != "0" else "1")
        create("admin", who=Person(wrong_check, good.mobile, "李老师"))
    assert "id_number" in refused.value.fields
    arabic = "".join(chr(0x660 + int(c)) if c.isdigit() else c for c in good.id_number)
    with pytest.raises(InvalidInput):
        create("admin", who=Person(arabic, good.mobile, "李老师"))
    with pytest.raises(InvalidInput):
        create("admin", who=Person(good.id_number, good.mobile, "李" * 31))
    with pytest.raises(InvalidInput):
        create("student", who=good)
    # Full-width digits are NFKC-normalised to the ID number they mean.
    wide = "".join(chr(ord(c) + 0xFEE0) for c in good.id_number)
    account, _, _ = create("admin", who=Person(wide, good.mobile, "李老师"))
    assert vault().decrypt(account.id_number_enc) == good.id_number
    assert [a.action for a in all_actions()] == ["create_account", "create_account"]


def test_reset_password_ends_sessions_and_forces_a_change(app) -> None:
    account, first, _ = create("staff", "NK01")
    epoch = account.session_epoch
    second = admin.reset_password(db.session, vault(), BY, NOW, account)
    db.session.commit()
    assert second != first and check_password(account, second) and not check_password(account, first)
    assert account.must_change_password and account.session_epoch == epoch + 1
    assert all_actions()[-1].action == "reset_password"


def test_disable_ends_sessions_and_protects_self_and_the_last_admin(app) -> None:
    me, _ = add_account("admin")
    staff, _ = add_account("staff")
    epoch = staff.session_epoch
    admin.set_account_enabled(db.session, vault(), admin.Operator.of(me), NOW, staff, False)
    db.session.commit()
    db.session.refresh(staff)
    assert staff.disabled_at is not None and staff.session_epoch == epoch + 1
    with pytest.raises(ConflictError, match="themself"):
        admin.set_account_enabled(db.session, vault(), admin.Operator.of(me), NOW, me, False)
    with pytest.raises(ConflictError, match="last active admin"):
        admin.set_account_enabled(db.session, vault(), BY, NOW, me, False)
    db.session.rollback()
    other, _ = add_account("admin")
    admin.set_account_enabled(db.session, vault(), admin.Operator.of(me), NOW, other, False)
    db.session.commit()
    with pytest.raises(ConflictError, match="last active admin"):
        admin.set_account_enabled(db.session, vault(), BY, NOW, me, False)
    db.session.rollback()
    admin.set_account_enabled(db.session, vault(), BY, NOW, staff, True)
    db.session.commit()
    assert staff.disabled_at is None
    assert [a.action for a in all_actions()] == ["disable_account", "disable_account", "enable_account"]
    assert all_actions()[0].actor == f"account:{me.id}"


def test_students_are_not_managed_here(app, make_applicant) -> None:
    who = make_applicant()
    with pytest.raises(NotFound):
        admin.managed_account(db.session, who.account_id)
    assert all(row.role != "student" for row in admin.list_accounts(db.session, vault()))


def test_list_masks_personal_data(app) -> None:
    _, _, who = create("staff", "NK01")
    [row] = admin.list_accounts(db.session, vault(), "staff")
    assert row.id_number == who.id_number[:6] + "********" + who.id_number[-4:]
    assert row.mobile == who.mobile[:3] + "****" + who.mobile[-4:]
    assert row.point.startswith("NK01") and row.must_change_password
    assert admin.list_accounts(db.session, vault(), "auditor") == []
    assert admin.role_counts(db.session)["staff"] == {"active": 1, "disabled": 0}


def test_points_create_edit_disable_delete(app, make_applicant) -> None:
    point = admin.create_point(
        db.session, BY, NOW, code="hp01 ", name="和平区招生考试中心", office_hours="工作日 9:00-17:00"
    )
    db.session.commit()
    assert point.code == "HP01" and point.office_hours == "工作日 9:00-17:00"
    with pytest.raises(ConflictError):
        admin.create_point(db.session, BY, NOW, code="HP01", name="重复")
    with pytest.raises(InvalidInput):
        admin.create_point(db.session, BY, NOW, code="和平", name="中文代码")
    with pytest.raises(InvalidInput):
        admin.create_point(db.session, BY, NOW, code="HP02", name="x", address="长" * 201)
    db.session.rollback()
    admin.edit_point(db.session, BY, NOW, point, name="和平区招生考试中心", address="和平区南京路1号")
    db.session.commit()
    assert all_actions()[-1].details == {"address": "和平区南京路1号"}  # only what changed
    # With staff (or applications) a point can only be disabled.
    add_account("staff", "NK01")
    nk01 = admin.point_by_code(db.session, "NK01")
    with pytest.raises(ConflictError):
        admin.delete_point(db.session, BY, NOW, nk01)
    admin.set_point_enabled(db.session, BY, NOW, nk01, False)
    db.session.commit()
    assert nk01.disabled_at is not None
    admin.delete_point(db.session, BY, NOW, point)
    db.session.commit()
    with pytest.raises(NotFound):
        admin.point_by_code(db.session, "HP01")
    assert [a.action for a in all_actions()] == ["create_point", "edit_point", "disable_point", "delete_point"]


def test_the_action_log_is_append_only(app) -> None:
    create("auditor")
    row = all_actions()[0]
    row.action = "something_else"
    with pytest.raises(ConflictError):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(ConflictError):
        db.session.delete(all_actions()[0])
        db.session.flush()
    db.session.rollback()
    assert [a.action for a in all_actions()] == ["create_account"]


def test_last_admin_protection_on_postgresql(pg_app) -> None:
    """The FOR UPDATE of the active admins is valid SQL there, and the rule holds."""
    first, _ = add_account("admin")
    second, _ = add_account("admin")
    admin.set_account_enabled(db.session, vault(), admin.Operator.of(first), NOW, second, False)
    db.session.commit()
    with pytest.raises(ConflictError, match="last active admin"):
        admin.set_account_enabled(db.session, vault(), BY, NOW, first, False)
    db.session.rollback()
