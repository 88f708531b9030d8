"""One student from 信息确认 to the downloaded 报名表, in a real browser, with the background
work done by a real Huey consumer (another process), as `make run` runs it (manual §2.8–2.12
and the 确认点 staff console):

信息确认 → 身份认证 (consent, the shipped face photos, 比对中 until the real deepface match
answers) → 网上支付 (订单详情, 支付宝 at the sandbox gateway's cashier, the result page, the
signed notify the consumer sends back) → 上传审核 (【+】 twice, one removed, 【提交审核】) →
the staff member of the student's 确认点, in a second browser context, rejects with a reason →
the student sees it, adds a photo, resubmits → staff approve → 下载报名表 (生成中 until the
consumer rendered it), the PDF's text, and its QR code opening 报名表真实有效.

Two students, one per viewport (the staff member is always at a desktop): on the phone a
退役士兵 (a special 考生类别), on the desktop one whom the 学籍/学历 registry does not know;
both need 上传审核. Screenshots: test-artifacts/e2e/<viewport>/NN-approval-*.png (the staff
member's too, in desktop/), and each downloaded PDF beside them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect
from sqlalchemy import select

from gzsb.bootstrap import engine
from gzsb.cli.demo import DEMO_PASSWORD, STAFF, Student, demo_student
from gzsb.cli.demo_images import document_png
from gzsb.common.security import mask_id_number
from gzsb.config import ROOT
from gzsb.extensions import db
from gzsb.models import Application, HistoryEvent
from tests.e2e.support import Screen, WorkerServer, assert_fits, log_in, open_screen
from tests.support import new_applicant, student_payload, to_confirming

pytestmark = pytest.mark.browser

FACES = ROOT / "tests" / "fixtures" / "faces"
STAFF_MOBILE = STAFF[0][3]


@dataclass(frozen=True)
class Journey:
    student: Student
    category: str
    in_registry: bool
    confirm_note: str  # why 信息确认 says materials will be needed
    need: str  # the document the 上传审核 page names (its first required slot)
    xueji_printed: str  # the form's 学籍/学历 cell


JOURNEYS = {
    # Demo student 7: 退役士兵, found in the registry.
    "phone": Journey(demo_student(7), "退役士兵", True, "您的考生类别为“退役士兵”", "退役证", "已验证"),
    # Demo student 9: 普通, not in the registry (every fifth demo student is not).
    "desktop": Journey(
        demo_student(9), "普通", False, "未查询到您的学籍/学历信息", "学历认证报告", "未查询到，经确认点审核学历材料"
    ),
}
REASON_CHOICE = "材料不清晰"
REASON_TEXT = "照片反光、字迹看不清，请重新拍摄"
# The real model loads in the consumer's worker at the first job (tens of seconds on a busy
# machine); later answers take about a second.
FACE_WAIT_MS = 180_000
JOB_WAIT_S = 90.0


def shot(screen: Screen, name: str, *, full_page: bool = True) -> Path:
    return screen.shot(f"approval-{name}", full_page=full_page)


def until(server: WorkerServer, what: str, check: Callable[[], bool], *, seconds: float = JOB_WAIT_S) -> None:
    """Wait for the consumer's work to show (``check`` reloads what it looks at)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {seconds:g} s; consumer log:\n{server.logs()}")


@contextmanager
def consumer_explains(server: WorkerServer) -> Iterator[None]:
    """A wait for the consumer that fails says what the consumer said."""
    try:
        yield
    except AssertionError as exc:
        pytest.fail(f"{exc}\n\nconsumer log:\n{server.logs()}")


def image_loaded(locator: Any, timeout_ms: float = 15_000) -> bool:
    """The image finished loading and decoded to a picture (a visible <img> may still be loading
    on a busy machine: wait for it, up to ``timeout_ms``)."""
    try:
        locator.page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=locator.element_handle(), timeout=timeout_ms
        )
    except PlaywrightTimeout:
        return False
    return True


def add_material(screen: Screen, seed: int, document: str) -> None:
    """The 【+】 of the named document: tap it, pick a photo in the file chooser;
    materials.js sends it at once, and the slot shows the thumbnail."""
    page = screen.page
    slot = page.locator("li.doc-slot", has_text=document)
    with page.expect_file_chooser() as chooser:
        screen.press(slot.locator("label.plus"))
    chooser.value.set_files(files=[{"name": f"材料-{seed}.png", "mimeType": "image/png", "buffer": document_png(seed)}])
    filled = page.locator("li.doc-slot.filled", has_text=document)
    expect(filled).to_have_count(1)
    expect(filled.locator("img")).to_be_visible()
    assert image_loaded(filled.locator("img")), "a material thumbnail did not load"


def qr_target(pdf: Path, folder: Path) -> str:
    """The text of the form's QR code, decoded from the rendered page (OpenCV, in a separate
    process: the test process plays the web server, which loads no vision framework).

    OpenCV's classic detector misses some renderings a phone camera reads fine, so the page
    is tried at two resolutions with both of OpenCV's detectors; the first answer counts."""
    script = (
        "import sys, cv2\n"
        "image = cv2.imread(sys.argv[1])\n"
        "for detector in (cv2.QRCodeDetectorAruco(), cv2.QRCodeDetector()):\n"
        "    text, _, _ = detector.detectAndDecode(image)\n"
        "    if text:\n"
        "        break\n"
        "print(text)\n"
    )
    for dpi in (200, 300):
        png = folder / f"form-page-{dpi}"
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", "-singlefile", str(pdf), str(png)], check=True, timeout=60)
        done = subprocess.run(
            [sys.executable, "-c", script, f"{png}.png"], capture_output=True, text=True, timeout=60, check=True
        )
        if done.stdout.strip():
            return done.stdout.strip()
    return ""


def start_at_confirmation(server: WorkerServer, journey: Journey) -> int:
    """The student's account and application, driven through the engine to 信息确认 (issue
    3's journey covers the pages up to there); the application's id."""
    with server.app.app_context():
        who = new_applicant(journey.student.index, category=journey.category, in_registry=journey.in_registry)
        if journey.in_registry:
            to_confirming(engine(), who)
        else:  # 【点击验证学籍/学历】 finds nothing; nothing to confirm or report
            eng = engine()
            eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
            eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
            eng.fire(who.application_id, "check_xueji", who.actor, {})
            choice = {"institution": "10060", "major": "080901"}
            eng.fire(who.application_id, "submit_preferences", who.actor, {"choices": [choice]})
        application = db.session.get(Application, who.application_id)
        assert application.state == "confirming"
        assert application.data["xueji"]["status"] == ("found" if journey.in_registry else "not_found")
        db.session.remove()
    return who.application_id


def history(server: WorkerServer, application_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(event, actor, payload) of the application's history, in order."""
    with server.app.app_context():
        rows = db.session.execute(
            select(HistoryEvent.event, HistoryEvent.actor, HistoryEvent.payload)
            .where(HistoryEvent.application_id == application_id)
            .order_by(HistoryEvent.seq)
        ).all()
        db.session.remove()
    return [(event, actor, json.loads(payload)) for event, actor, payload in rows]


@pytest.mark.parametrize("viewport", sorted(JOURNEYS))
def test_student_pays_uploads_materials_and_downloads_the_form_after_staff_review(
    viewport: str, browser: Any, worker_server: WorkerServer, tmp_path: Path
) -> None:
    server = worker_server
    journey = JOURNEYS[viewport]
    applicant = journey.student
    application_id = start_at_confirmation(server, journey)
    with open_screen(browser, server.url, viewport) as student, open_screen(browser, server.url, "desktop") as staff:
        page = student.page

        # ------------------------------------------------------------ 信息确认
        log_in(student, applicant.mobile, DEMO_PASSWORD)
        student.press(page.get_by_role("link", name="去确认"))
        expect(page.locator("h1")).to_have_text("信息确认")
        expect(page.locator(".confirm-page")).to_contain_text(journey.confirm_note)
        shot(student, "confirm")
        student.press(page.get_by_role("button", name="完成信息采集去身份认证"))

        # ------------------------------------------------------------ 身份认证: consent, upload
        expect(page.locator("h1")).to_have_text("身份认证")
        expect(page.locator("#consent")).to_contain_text("人脸信息处理说明")
        expect(page.locator("#manual details")).to_have_attribute("open", "")  # the alternative, offered
        assert_fits(student)
        shot(student, "identity-consent")
        page.locator('#consent input[name="agree"]').check()
        student.press(page.get_by_role("button", name="同意并继续"))
        expect(page.locator("#upload")).to_contain_text("已同意人脸信息处理")
        page.set_input_files("#f-photo", str(FACES / "obama.jpg"))
        page.set_input_files("#f-id_card", str(FACES / "obama2.jpg"))
        for preview in ("#p-photo", "#p-id_card"):
            expect(page.locator(preview)).to_be_visible()
        assert_fits(student)
        shot(student, "identity-chosen")
        student.press(page.get_by_role("button", name="上传认证"))

        # ------------------------------------------------------------ 比对中 → 认证成功, no reload
        expect(page.locator("#face-checking")).to_contain_text("比对中")
        shot(student, "identity-checking", full_page=False)
        success = page.locator("#identity-success")
        with consumer_explains(server):
            expect(success).to_be_visible(timeout=FACE_WAIT_MS)
        expect(page).to_have_url(re.compile(r"/application/identity/result$"))
        expect(success.locator("h1")).to_have_text("认证成功")
        expect(success).to_contain_text("比对一致")
        assert_fits(student)
        shot(student, "identity-verified")
        # The consumer's real matcher decided, and said how (distance, threshold, model).
        matched = [(a, p) for e, a, p in history(server, application_id) if e.startswith("face_")]
        assert [a for a, _ in matched] == ["system:faces"], matched
        result = matched[0][1]
        assert result["matched"] is True and result["model"] == "Dlib", result
        assert result["distance"] <= result["threshold"] == 0.415 and result["band"] == "pass", result
        student.press(success.get_by_role("link", name=re.compile("网上支付")))

        # ------------------------------------------------------------ 网上支付: 去支付 → 订单详情
        expect(page.locator(".payment-page")).to_contain_text("¥160.00")
        shot(student, "payment")
        student.press(page.get_by_role("button", name="去支付"))
        detail = page.locator(".order-detail")
        expect(detail.locator("h2")).to_have_text("订单详情")
        expect(detail).to_contain_text(applicant.name)
        expect(detail).to_contain_text(mask_id_number(applicant.id_number))
        expect(detail.locator(".amount")).to_have_text("¥160.00")
        order_number = detail.locator(".order-number").inner_text().strip()
        assert order_number, "the order has no number"
        assert_fits(student)
        shot(student, "order")
        student.press(page.get_by_role("link", name="立即支付"))

        # ------------------------------------------------------------ 支付宝 at the sandbox cashier
        expect(page.locator("h1")).to_have_text("选择支付方式")
        for name in ("支付宝", "微信支付", "银联"):
            expect(page.locator(".pay-channels")).to_contain_text(name)
        student.press(page.locator("label.channel-alipay"))
        expect(page.locator('input[name="channel"][value="alipay"]')).to_be_checked()
        shot(student, "pay-channel")
        student.press(page.get_by_role("button", name="确认支付"))
        expect(page).to_have_url(re.compile(r"/sandbox/cashier/SBX\w+$"))
        cashier = page.locator(".cashier")
        expect(cashier).to_contain_text("支付宝收银台")
        expect(cashier.locator(".cashier-amount")).to_have_text("¥160.00")
        expect(cashier).to_contain_text(order_number)
        assert_fits(student)
        shot(student, "cashier")
        student.press(cashier.get_by_role("button", name="确认支付"))

        # ------------------------------------------------------------ back: result, then the notify
        expect(page).to_have_url(re.compile(rf"/payment/orders/{order_number}/result"))
        # The browser is usually back before the consumer delivered the notify: the gateway's
        # query says paid, our records not yet (支付处理中); either way never 支付未完成.
        expect(page.locator("h1")).to_have_text(re.compile("^(支付处理中|支付成功)$"))
        shot(student, "pay-result-first")

        def paid() -> bool:
            page.reload()
            return page.locator("h1").inner_text() == "支付成功"

        until(server, "the sandbox notify through the consumer", paid)
        expect(page.locator(".pay-result")).to_contain_text("您已成功支付报名考试费 ¥160.00")
        assert_fits(student)
        shot(student, "pay-result-paid")
        paid_events = [(a, p) for e, a, p in history(server, application_id) if e == "payment_succeeded"]
        assert len(paid_events) == 1 and paid_events[0][0] == "system:payments", paid_events
        assert paid_events[0][1]["order"] == order_number and paid_events[0][1]["channel"] == "alipay"
        student.press(page.get_by_role("link", name="返回流程页面"))

        # ------------------------------------------------------------ 上传审核: the named slot, replace, submit
        expect(page.locator('li.stage[aria-current="step"]')).to_contain_text("上传审核")
        shot(student, "process-materials")
        student.press(page.get_by_role("link", name="上传审核"))
        expect(page.locator("h1")).to_have_text("上传审核材料")
        expect(page.locator(".needs")).to_contain_text(journey.need)
        expect(page.get_by_role("button", name="提交审核")).to_be_disabled()  # nothing added yet
        shot(student, "materials-empty")
        add_material(student, 1, journey.need)
        expect(page.locator("#m-files")).to_contain_text("已上传的材料（1/")
        assert_fits(student)
        shot(student, "materials-one")
        first = page.locator("li.doc-slot.filled img").first.get_attribute("src")
        student.press(page.get_by_role("button", name=f"删除{journey.need}"))  # replace it
        expect(page.locator("li.doc-slot.filled")).to_have_count(0)
        add_material(student, 2, journey.need)
        expect(page.locator("li.doc-slot.filled img")).not_to_have_attribute("src", first or "")
        shot(student, "materials-replaced")
        student.press(page.get_by_role("button", name="提交审核"))
        expect(page.locator("h1")).to_have_text("材料审核中")
        expect(page.locator("#materials .notice")).to_contain_text("审核中")
        expect(page.locator("#m-sent")).to_have_text("已提交的材料（1张）")
        assert_fits(student)
        shot(student, "materials-review")

        # ------------------------------------------------------------ staff: the queue, a rejection
        desk = staff.page
        log_in(staff, STAFF_MOBILE, DEMO_PASSWORD, landing="**/staff/")
        card = desk.locator("li.queue-card", has_text="材料审核")
        expect(card.locator(".count")).to_have_text("1")
        expect(desk.locator(".brand")).to_contain_text("南开区招生考试中心")
        shot(staff, "staff-dashboard")
        staff.press(card.locator("a"))
        row = desk.locator("table.queue-table tbody tr", has_text=applicant.name)
        expect(row).to_have_count(1)
        expect(row).to_contain_text(mask_id_number(applicant.id_number))
        expect(row).to_contain_text(journey.category)
        shot(staff, "staff-queue")
        staff.press(row.get_by_role("link", name="审核"))
        expect(desk.locator("h1")).to_have_text(f"材料审核：{applicant.name}")
        sent = desk.locator("#s-materials").locator("xpath=..").locator("ul.thumbs li[data-document] img")
        expect(sent).to_have_count(1)
        assert image_loaded(sent.first), "the staff member cannot see the material photo"
        # Named, beside the 证件照.
        named = desk.locator("#s-materials").locator("xpath=..").locator("ul.thumbs .caption strong")
        expect(named).to_have_text(["证件照", journey.need])
        reject = desk.locator("form.reject")
        staff.press(reject.get_by_role("button", name="审核不通过"))  # no reason: refused
        expect(desk.locator("form.reject .error")).to_have_text("请选择或填写不通过原因")
        shot(staff, "staff-reject-no-reason")
        reject = desk.locator("form.reject")
        reject.locator('select[name="reason_choice"]').select_option(REASON_CHOICE)
        reject.locator('textarea[name="reason_text"]').fill(REASON_TEXT)
        shot(staff, "staff-rejecting")
        staff.press(reject.get_by_role("button", name="审核不通过"))
        expect(desk.locator(".flash")).to_have_text(f"已处理：{applicant.name}，审核不通过。")
        expect(desk.locator("table.queue-table tbody tr", has_text=applicant.name)).to_have_count(0)
        shot(staff, "staff-rejected")

        # ------------------------------------------------------------ student: the reason, fix, resubmit
        page.reload()
        expect(page.locator("h1")).to_have_text("材料审核未通过")
        notice = page.locator("#materials .notice.warn")
        expect(notice).to_contain_text("材料审核未通过")
        expect(notice).to_contain_text(f"原因：{REASON_CHOICE}：{REASON_TEXT}")
        assert_fits(student)
        shot(student, "materials-rejected")
        student.press(page.get_by_role("button", name=f"删除{journey.need}"))
        add_material(student, 3, journey.need)
        shot(student, "materials-fixed")
        student.press(page.get_by_role("button", name="提交审核"))
        expect(page.locator("h1")).to_have_text("材料审核中")
        expect(page.locator("#m-sent")).to_have_text("已提交的材料（1张）")
        shot(student, "materials-review-again")

        # ------------------------------------------------------------ staff: approve the second round
        desk.goto("/staff/queues/materials")
        row = desk.locator("table.queue-table tbody tr", has_text=applicant.name)
        staff.press(row.get_by_role("link", name="审核"))
        materials = desk.locator("section[aria-labelledby='s-materials']")
        expect(materials.locator("h2")).to_contain_text("第2次提交")
        expect(materials).to_contain_text(f"第1次提交未通过：{REASON_CHOICE}：{REASON_TEXT}")
        expect(materials.locator("ul.thumbs li[data-document] img")).to_have_count(1)
        expect(desk.locator("ol.timeline")).to_contain_text(REASON_TEXT)
        shot(staff, "staff-second-round")
        staff.press(desk.locator("form.approve").get_by_role("button", name="审核通过"))
        expect(desk.locator(".flash")).to_have_text(f"已处理：{applicant.name}，审核通过。")
        shot(staff, "staff-approved")

        # ------------------------------------------------------------ 下载报名表: 生成中 → ready
        page.goto("/application")
        expect(page.locator("h1")).to_have_text("报名完成")
        expect(page.get_by_role("button", name="退出")).to_be_visible()
        generating = page.locator(".download-page h2", has_text="报名表生成中")
        if generating.count():
            shot(student, "download-generating")
        ready = page.locator("section[aria-labelledby='f-ready']")
        # The page refreshes itself while the consumer renders the PDF.
        with consumer_explains(server):
            expect(ready).to_be_visible(timeout=int(JOB_WAIT_S * 1000))
        serial = ready.locator("dd.serial").nth(0).inner_text().strip()
        code = ready.locator("dd.serial").nth(1).inner_text().strip()
        assert re.fullmatch(r"\d{4}-NK01-\d{6}", serial), serial
        assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", code), code
        statuses = {
            li.locator(".label").inner_text(): li.locator(".status").inner_text()
            for li in page.locator("ol.stages li.stage").all()
        }
        assert statuses["网上支付"] == "已完成" and statuses["上传审核"] == "已完成", statuses
        assert_fits(student)
        shot(student, "download-ready")
        with page.expect_download() as downloaded:
            student.press(ready.get_by_role("link", name="下载报名表"))
        download = downloaded.value
        assert download.suggested_filename == f"报名表-{serial}.pdf"  # filename* (RFC 6266) wins
        pdf = student.folder / f"approval-registration-form-{serial}.pdf"
        download.save_as(pdf)
        assert pdf.read_bytes().startswith(b"%PDF-")

        # ------------------------------------------------------------ the PDF's text and its QR code
        text = subprocess.run(
            ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        person = (applicant.name, applicant.id_number, journey.category, journey.xueji_printed)
        for expected in (*person, serial, code, order_number, "天津理工大学", "计算机科学与技术", "南开区招生考试中心"):
            assert expected in text, f"{expected!r} is not in the PDF's text:\n{text}"
        target = qr_target(pdf, tmp_path)
        assert target == f"{server.url}/verify/{serial}?code={code.replace('-', '')}", target
        assert target in re.sub(r"\s+", "", text), "the printed address differs from the QR code's"

    # Anyone holding the paper opens the QR code's address: no login needed.
    with open_screen(browser, server.url, viewport) as public:
        public.page.goto(target)
        expect(public.page.locator(".verdict")).to_have_text("报名表真实有效")
        details = public.page.locator(".verify-page .panel")
        expect(details).to_contain_text(serial)
        expect(details).to_contain_text(mask_id_number(applicant.id_number))
        expect(details).to_contain_text("南开区招生考试中心")
        assert applicant.id_number not in details.inner_text()
        assert_fits(public)
        shot(public, "verify")
