"""The admin's flow workbench in a real browser (issue 11), on a desktop and a phone viewport:
admin A opens the editor on the live flow, types a typo'd guard (``paied``) and sees the problem
at its line (gutter marker and list; a click on the problem moves the cursor there), fixes it
while moving the registration window's close date, sees the diagram redrawn and the diff,
proposes; admin B, in a second browser context, approves; the versions list shows the new
live version. Screenshots: test-artifacts/e2e/<viewport>/NN-workbench-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from gzsb.accounts.service import create_account
from gzsb.bootstrap import vault
from gzsb.cli.demo import DEMO_PASSWORD
from gzsb.config import TestConfig
from gzsb.extensions import db
from gzsb.models import FlowJob
from gzsb.store import FLOWS
from gzsb.workflow.loader import flow_sha256
from tests.admin.support import Person, person
from tests.e2e.support import LiveServer, Screen, assert_fits, log_in, open_screen
from tests.support import PASSWORD_HASH

pytestmark = pytest.mark.browser

OLD_CLOSE = 'closes: "2027-01-12T17:00:00+08:00"'
# Each viewport's run publishes its own version on the shared live server.
NEW_CLOSE = {"desktop": 'closes: "2027-03-31T17:00:00+08:00"', "phone": 'closes: "2027-04-30T17:00:00+08:00"'}


@pytest.fixture(scope="module")
def admins(live_server: LiveServer) -> Iterator[tuple[Person, Person]]:
    """Two admin accounts with the demo password, past their first log-in (as tests/admin do)."""
    people = (person("王管理"), person("李管理"))
    with live_server.app.app_context():
        for who in people:
            create_account(
                db.session, vault(), name=who.name, id_number=who.id_number, password_hash=PASSWORD_HASH,
                mobile=who.mobile, role="admin",
            )  # fmt: skip
        db.session.commit()
        db.session.remove()
    yield people


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def live_version(server: LiveServer) -> tuple[int, str]:
    with server.app.app_context():
        row = FLOWS.current(db.session, server.app.config["FLOW_NAME"])
        found = (row.id, row.sha256)
        db.session.remove()
    return found


def flow_jobs_count(server: LiveServer) -> int:
    with server.app.app_context():
        count = db.session.scalar(select(func.count()).select_from(FlowJob)) or 0
        db.session.remove()
    return count


def wait_for_diagram(page: Page, sha: str) -> None:
    expect(page.locator("#wb-diagram")).to_have_attribute("data-sha", sha)
    expect(page.locator("#wb-status")).to_have_text("没有问题，流程图已更新")


def test_admin_edits_proposes_and_a_second_admin_publishes(
    screen: Screen, browser, live_server: LiveServer, admins: tuple[Person, Person]
) -> None:
    first, second = admins
    page = screen.page
    log_in(screen, first.id_number, DEMO_PASSWORD, landing="**/admin/")

    # The workbench: versions, the funnel (the live flow's diagram with counts), the editor.
    page.goto("/admin/flows")
    expect(page.get_by_role("heading", name="流程管理")).to_be_visible()
    expect(page.locator("#funnel")).to_be_visible()
    assert page.locator("#funnel").evaluate("img => img.naturalWidth") > 0
    assert_fits(screen)
    screen.shot("workbench-index")
    screen.press(page.locator("#open-editor"))
    page.wait_for_url("**/admin/flows/edit")
    _, live_sha = live_version(live_server)
    wait_for_diagram(page, live_sha)
    editor = page.locator("#wb-text")
    text = editor.input_value()
    assert OLD_CLOSE in text or "closes:" in text

    # A typo'd guard: the problem appears at its line, in the gutter and in the list.
    typo = text.replace("xueji_checked", "paied", 1)
    editor.fill(typo)
    line = line_of(typo, "paied")
    problem = page.locator("button.wb-problem", has_text="paied")
    expect(problem).to_be_visible()
    expect(problem).to_have_attribute("data-line", str(line))
    expect(problem.locator(".wb-line")).to_have_text(f"第{line}行")
    expect(page.locator(f'#wb-gutter div.bad[data-line="{line}"]')).to_have_count(1)
    expect(page.locator("#wb-status")).to_have_text(re.compile(r"发现\d+个问题"))
    expect(page.locator("#wb-diagram")).to_have_class(re.compile("stale"))
    screen.press(problem)
    start = editor.evaluate("t => t.selectionStart")
    assert typo[:start].count("\n") + 1 == line, "the cursor did not move to the problem's line"
    assert_fits(screen)
    screen.shot("workbench-typo")

    # Fixed, and the registration window's close date moved: the diagram is redrawn.
    current_close = re.search(r'closes: "[^"]+"', text)
    assert current_close
    edited = text.replace(current_close.group(0), NEW_CLOSE[screen.viewport], 1)
    editor.fill(edited)
    wait_for_diagram(page, flow_sha256(edited))
    expect(page.locator("#wb-problems")).to_contain_text("没有问题")
    expect(page.locator("#wb-gutter div.bad")).to_have_count(0)
    screen.press(page.locator("#wb-diff-button"))
    diff = page.locator("#wb-diff")
    expect(diff).to_contain_text("windows.registration.closes")
    expect(diff).to_contain_text(NEW_CLOSE[screen.viewport].split('"')[1][:10])
    screen.press(page.locator("#wb-impact-button"))
    expect(page.locator("#wb-impact")).to_contain_text("对在办考生的影响")
    assert_fits(screen)
    screen.shot("workbench-fixed")

    # A fleet above FLOW_JOB_SYNC_MAX: the report comes from a worker job the panel polls
    # (the test server's queue is immediate, so the job has ended by the first poll).
    jobs_before = flow_jobs_count(live_server)
    live_server.app.config["FLOW_JOB_SYNC_MAX"] = -1
    try:
        page.locator("#wb-impact").evaluate("box => { box.textContent = ''; }")
        screen.press(page.locator("#wb-impact-button"))
        expect(page.locator("#wb-impact")).to_contain_text("对在办考生的影响")
    finally:
        live_server.app.config["FLOW_JOB_SYNC_MAX"] = TestConfig.FLOW_JOB_SYNC_MAX
    assert flow_jobs_count(live_server) == jobs_before + 1

    # Propose; the proposer cannot approve it.
    page.fill("#wb-note", "报名截止时间延长")
    screen.press(page.locator("#wb-propose-button"))
    page.wait_for_url(re.compile(r".*/admin/flows/proposals/\d+$"))
    proposal_url = page.url
    expect(page.locator("#proposal-status")).to_have_text("待批准")
    expect(page.locator("#own-note")).to_be_visible()
    assert_fits(screen)
    screen.shot("workbench-proposed")
    screen.press(page.locator("#approve-button"))
    expect(page.locator(".flash")).to_have_text("不能审批自己提交的流程提案，须由另一位管理员审批")
    assert live_version(live_server)[1] == live_sha

    # Admin B, in a second browser context, approves.
    with open_screen(browser, live_server.url, screen.viewport) as other:
        log_in(other, second.id_number, DEMO_PASSWORD, landing="**/admin/")
        other.page.goto(proposal_url)
        expect(other.page.locator("#proposal-status")).to_have_text("待批准")
        expect(other.page.locator("#own-note")).to_have_count(0)
        other.press(other.page.locator("#approve-button"))
        expect(other.page.locator(".flash")).to_have_text("已批准，新版本已发布")
        expect(other.page.locator("#proposal-status")).to_have_text("已发布")
        other.shot("workbench-approved")
        version_id, sha = live_version(live_server)
        assert sha == flow_sha256(edited)
        other.page.goto("/admin/flows")
        live_row = other.page.locator("#versions tr.live")
        expect(live_row).to_have_attribute("data-version", str(version_id))
        expect(live_row).to_contain_text("生效中")
        assert_fits(other)
        other.shot("workbench-versions")

    # Admin A sees it too.
    page.goto("/admin/flows")
    expect(page.locator("#versions tr.live")).to_have_attribute("data-version", str(version_id))
