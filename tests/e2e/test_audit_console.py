"""The auditor console in a real browser (issue 12): the demo auditor logs in, finds an
application (by 报名序号 on the desktop, by ID number on the phone), reads its timeline and
path diagram, verifies it, and runs the fleet verify. Desktop 1280×800 and phone 390×844: no
horizontal scrolling, no JavaScript errors. Screenshots: test-artifacts/e2e/<viewport>/NN-audit-*.png.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from gzsb.accounts.service import create_account
from gzsb.bootstrap import engine, vault
from gzsb.cli.demo import DEMO_PASSWORD, STAFF, demo_student, id_number
from gzsb.extensions import db
from gzsb.models import Account, Application
from gzsb.regform.service import ensure_form
from tests.drive import to_approved
from tests.e2e.support import LiveServer, Screen, assert_fits
from tests.support import PASSWORD_HASH, new_applicant

pytestmark = pytest.mark.browser

AUDITOR = next(s for s in STAFF if s[0] == "auditor")
AUDITOR_ID = id_number(AUDITOR[2])
# Demo students of this module (other e2e modules have their own live server).
STUDENTS = {"desktop": 31, "phone": 32}


@pytest.fixture(scope="module")
def applications(live_server: LiveServer) -> dict[str, dict[str, str]]:
    """The demo auditor, and one approved applicant per viewport with its serial."""
    found: dict[str, dict[str, str]] = {}
    with live_server.app.app_context():
        if db.session.query(Account.id).filter_by(role="auditor").first() is None:
            role, name, _seed, mobile, _point = AUDITOR
            create_account(
                db.session, vault(), name=name, id_number=AUDITOR_ID, password_hash=PASSWORD_HASH,
                mobile=mobile, role=role,
            )  # fmt: skip
            db.session.commit()
        eng = engine()
        for viewport, index in STUDENTS.items():
            who = new_applicant(index)
            to_approved(eng, who)
            record = db.session.get(Application, who.application_id)
            form = ensure_form(db.session, record, eng.clock())
            found[viewport] = {"uid": record.uid, "serial": form.serial, "id_number": demo_student(index).id_number}
        db.session.remove()
    return found


def shot(screen: Screen, name: str) -> None:
    assert_fits(screen)
    screen.shot(f"audit-{name}")


def test_auditor_finds_reads_and_verifies(screen: Screen, applications: dict[str, dict[str, str]]) -> None:
    page: Any = screen.page
    mine = applications[screen.viewport]
    page.goto("/login?next=/audit/")
    page.fill("#f-login", AUDITOR_ID)
    page.fill("#f-password", DEMO_PASSWORD)
    screen.press(page.get_by_role("button", name="登录报名"))
    page.wait_for_url("**/audit/")
    expect(page.get_by_role("heading", name="审计总览")).to_be_visible()
    expect(page.locator("#no-checkpoint")).to_have_text("尚未生成检查点。")
    shot(screen, "home")

    # A wrong query first: a Chinese message, nothing echoed.
    page.fill("#f-q", "12345")
    screen.press(page.locator("form.find-form button[type=submit]"))
    expect(page.locator("#find-error")).to_contain_text("身份证号应为18位")
    shot(screen, "find-error")

    query = mine["serial"] if screen.viewport == "desktop" else mine["id_number"]
    page.fill("#f-q", query)
    screen.press(page.locator("form.find-form button[type=submit]"))
    page.wait_for_url(f"**/audit/applications/{mine['uid']}")
    expect(page.get_by_role("heading", name="办理记录（11 个事件）")).to_be_visible()
    assert query not in page.url
    content = page.content()
    assert mine["id_number"] not in content
    assert page.locator(".audit-timeline .event").count() == 11
    image = page.locator("#flow-image")
    expect(image).to_be_visible()
    assert page.evaluate("document.getElementById('flow-image').naturalWidth") > 0, "the diagram did not load"
    shot(screen, "application")

    screen.press(page.locator("#verify-one"))
    expect(page.locator("#verdict")).to_contain_text("校验通过：11 个事件")
    shot(screen, "verified")

    page.goto("/audit/")
    screen.press(page.locator("#verify-all"))
    page.wait_for_url("**/audit/#run-*")
    expect(page.locator(".run").first).to_contain_text("全部通过")
    shot(screen, "fleet-verified")
