"""A new student in a real browser, from the 考生首页 to 信息确认 (manual §2.1–2.8 and the
学籍/学历 check), on a desktop and a phone viewport. On the way: a wrong ID number, a wrong
SMS code, a refused duplicate 志愿, a required field left out, and a 学籍 mismatch reported
with an evidence image. Screenshots of every page: test-artifacts/e2e/<viewport>/."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from gzsb.cli.demo import Student, demo_student
from gzsb.common.security import mask_id_number, mask_mobile
from tests.e2e.support import Screen, assert_fits, log_in, sms_code

pytestmark = pytest.mark.browser

PASSWORD = "Tianjin2026ok"


@dataclass(frozen=True)
class Journey:
    student: Student
    # What the student says is wrong in the registry record, and what the record shows.
    problem: str
    registry_year: str


# Desktop: demo student 6, whose registry record has the wrong graduation year.
# Phone: demo student 11 (ID number ending in X, 退役士兵) reports a wrong photo.
JOURNEYS = {
    "desktop": Journey(demo_student(6), "毕业年份有误，应为2027年", "2026"),
    "phone": Journey(demo_student(11), "学籍照片不是本人，请更正", "2027"),
}


def evidence_png() -> bytes:
    """A stand-in for a photographed 毕业证明 (any real PNG will do)."""
    image = Image.new("RGB", (480, 340), (250, 246, 232))
    draw = ImageDraw.Draw(image)
    draw.rectangle((12, 12, 467, 327), outline=(160, 30, 30), width=6)
    for y in range(80, 300, 36):
        draw.line((50, y, 430, y), fill=(90, 90, 90), width=3)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def error_of(page: Page, field: str):
    """The Chinese error shown next to a field (``aria-describedby`` points at it)."""
    return page.locator(f"#e-{field}")


def stage_statuses(page: Page) -> dict[str, str]:
    rows = page.locator("ol.stages li.stage")
    return {
        rows.nth(i).locator(".label").inner_text(): rows.nth(i).locator(".status").inner_text()
        for i in range(rows.count())
    }


def pick(screen: Screen, row: int, query: str, institution: str, major: str) -> None:
    """Open a 志愿's pop-up, type a search, tap the result naming the institution and major."""
    page = screen.page
    screen.press(page.locator(f'fieldset.choice[data-index="{row}"] .picker-display'))
    dialog = page.locator("#catalog-dialog")
    expect(dialog).to_be_visible()
    page.locator("#catalog-q").fill(query)
    # Every result shown must match the words typed (the list is refreshed as one types).
    for word in query.split():
        expect(dialog.locator(".catalog-item").filter(has_not_text=word)).to_have_count(0)
    screen.press(dialog.locator(".catalog-item", has_text=institution).filter(has_text=major).first)


def test_new_student_registers_and_reaches_confirmation(screen: Screen) -> None:
    page = screen.page
    journey = JOURNEYS[screen.viewport]
    student = journey.student
    number = student.id_number
    wrong_number = number[:17] + ("0" if number[17] != "0" else "1")

    # ---------------------------------------------------------------- 考生首页
    page.goto("/")
    expect(page.locator("h1")).to_contain_text("天津市高职升本")
    expect(page.locator("#window-status")).to_have_text("报名进行中")
    expect(page.locator("section.panel").first).to_contain_text("2026年11月16日 09:00 至 2027年01月12日 17:00")
    assert_fits(screen)
    screen.shot("home")
    screen.press(page.get_by_role("link", name="考生注册"))

    # ---------------------------------------------------------------- 注册: wrong ID number
    expect(page.locator("h1")).to_have_text("考生注册")
    screen.shot("register")
    page.fill("#f-name", student.name)
    page.fill("#f-id_number", wrong_number)
    page.fill("#f-id_number2", wrong_number)
    page.fill("#f-mobile", student.mobile)
    page.fill("#f-password", PASSWORD)
    page.fill("#f-password2", PASSWORD)
    page.locator('input[name="agree"]').check()
    screen.press(page.get_by_role("button", name="确定"))
    expect(error_of(page, "id_number")).to_have_text("身份证号校验位不正确，请核对")
    expect(error_of(page, "code")).to_have_text("请输入短信验证码")
    expect(page.locator("#f-id_number")).to_have_attribute("aria-invalid", "true")
    # What was typed is still there (passwords excepted, on purpose).
    expect(page.locator("#f-name")).to_have_value(student.name)
    expect(page.locator("#f-mobile")).to_have_value(student.mobile)
    expect(page.locator("#f-id_number")).to_have_value(wrong_number)
    expect(page.locator('input[name="agree"]')).to_be_checked()
    assert_fits(screen)
    screen.shot("register-wrong-id")

    # ---------------------------------------------------------------- 获取验证码
    typed = number.lower() if number.endswith("X") else number  # a lower-case x is accepted
    page.fill("#f-id_number", typed)
    page.fill("#f-id_number2", typed)
    screen.press(page.get_by_role("button", name="获取验证码"))
    expect(page.locator("p.notice")).to_have_text(re.compile(f"验证码已发送至{re.escape(mask_mobile(student.mobile))}"))
    sex = "男" if int(number[16]) % 2 else "女"
    expect(page.locator("#derived")).to_contain_text(f"性别：{sex}")
    expect(page.locator("#derived")).to_contain_text(f"{number[6:10]}年{number[10:12]}月{number[12:14]}日")
    expect(page.locator("#f-name")).to_have_value(student.name)
    screen.shot("register-code-sent")
    code = sms_code(page, student.mobile, shot=screen)

    # ---------------------------------------------------------------- 注册: wrong SMS code
    wrong_code = code[:5] + str((int(code[5]) + 1) % 10)
    page.fill("#f-code", wrong_code)
    page.fill("#f-password", PASSWORD)
    page.fill("#f-password2", PASSWORD)
    screen.press(page.get_by_role("button", name="确定"))
    expect(error_of(page, "code")).to_have_text("验证码错误，还可尝试4次")
    expect(page.locator("#f-code")).to_have_value(wrong_code)
    expect(page.locator("#f-id_number")).to_have_value(number)
    expect(page.locator("#f-id_number2")).to_have_value(number)
    assert_fits(screen)
    screen.shot("register-wrong-code")

    page.fill("#f-code", code)
    page.fill("#f-password", PASSWORD)
    page.fill("#f-password2", PASSWORD)
    screen.press(page.get_by_role("button", name="确定"))

    # ---------------------------------------------------------------- 流程页面
    expect(page).to_have_url(re.compile(r"/process$"))
    expect(page.get_by_role("button", name="退出")).to_be_visible()
    statuses = stage_statuses(page)
    assert statuses["填写基本信息"] == "进行中"
    assert {statuses[s] for s in ("填写志愿信息", "信息确认", "身份认证", "网上支付", "下载报名表")} == {"未开始"}
    expect(page.locator('li.stage[aria-current="step"]')).to_contain_text("填写基本信息")
    assert_fits(screen)
    screen.shot("process-start")
    screen.press(page.get_by_role("link", name="去填写"))

    # ---------------------------------------------------------------- 承诺书
    expect(page.locator("h1")).to_have_text("阅读考试承诺书")
    expect(page.locator(".pledge-text")).to_contain_text("国家教育考试违规处理办法")
    screen.shot("pledge")
    screen.press(page.get_by_role("button", name="我遵守"))  # not ticked yet
    expect(error_of(page, "agree")).to_have_text("请先阅读并勾选考试承诺书")
    box, text = page.locator('input[name="agree"]').bounding_box(), page.locator("label.check span").bounding_box()
    assert box and text
    beside = box["x"] + box["width"] <= text["x"] and box["y"] < text["y"] + text["height"]
    assert beside, f"the tick box is not beside its text: {box} {text}"
    assert_fits(screen)
    screen.shot("pledge-not-ticked")
    page.locator('input[name="agree"]').check()
    screen.press(page.get_by_role("button", name="我遵守"))

    # ---------------------------------------------------------------- 基本信息
    expect(page.locator("h1")).to_have_text("填写基本信息")
    # Prefilled from the account: name, mobile, sex, and the ID number and birth date locked.
    expect(page.locator("#f-name")).to_have_value(student.name)
    expect(page.locator("#f-mobile")).to_have_value(student.mobile)
    expect(page.locator("#f-id_number")).to_have_value(number)
    expect(page.locator("#f-birth_date")).to_have_value(f"{number[6:10]}-{number[10:12]}-{number[12:14]}")
    expect(page.locator(f'input[name="sex"][value="{sex}"]')).to_be_checked()
    screen.shot("basic-info")
    page.select_option("#f-ethnicity", "汉族")
    page.select_option("#f-political_status", "共青团员")
    page.fill("#f-address", "天津市南开区卫津路92号")
    page.fill("#f-postcode", "3000")  # too short
    page.fill("#f-college", "天津职业大学")
    page.fill("#f-major", "计算机应用技术")
    page.fill("#f-graduation_year", "2027")
    page.select_option("#f-category", student.category)
    page.select_option("#f-confirmation_point", label="南开区招生考试中心")
    screen.press(page.get_by_role("button", name="提交并继续"))
    expect(error_of(page, "postcode")).to_have_text("邮编应为6位数字")
    expect(page.locator("#f-address")).to_have_value("天津市南开区卫津路92号")
    expect(page.locator("#f-ethnicity")).to_have_value("汉族")
    expect(page.locator("#f-confirmation_point")).to_have_value("NK01")
    assert_fits(screen)
    screen.shot("basic-info-error")
    page.fill("#f-postcode", "300072")
    screen.press(page.get_by_role("button", name="提交并继续"))

    # ---------------------------------------------------------------- 填写志愿: pop-up, duplicate
    expect(page.locator("h1")).to_have_text("填写志愿信息")
    screen.shot("preferences")
    pick(screen, 0, "理工 计算机", "天津理工大学", "计算机科学与技术")
    expect(page.locator("#catalog-dialog")).to_be_hidden()
    first = page.locator('fieldset.choice[data-index="0"] .picker-display')
    expect(first).to_have_text(re.compile("天津理工大学.*计算机科学与技术"))
    pick(screen, 1, "理工 计算机", "天津理工大学", "计算机科学与技术")
    expect(page.locator("#catalog-status")).to_have_text("该院校专业已在志愿一中填报，志愿不能重复")
    expect(page.locator("#catalog-dialog")).to_be_visible()
    screen.shot("preferences-duplicate", full_page=False)
    page.locator("#catalog-q").fill("城建 工程造价")
    for word in ("城建", "工程造价"):
        expect(page.locator("#catalog-dialog .catalog-item").filter(has_not_text=word)).to_have_count(0)
    screen.press(page.locator("#catalog-dialog .catalog-item", has_text="工程造价").first)
    expect(page.locator("#catalog-dialog")).to_be_hidden()
    second = page.locator('fieldset.choice[data-index="1"] .picker-display')
    expect(second).to_have_text(re.compile("天津城建大学.*工程造价"))

    # ---------------------------------------------------------------- 验证学籍/学历 (图像校对)
    screen.press(page.get_by_role("button", name="点击验证学籍/学历"))
    record = page.locator(".xueji-record")
    expect(record).to_contain_text(student.name)
    expect(record).to_contain_text(mask_id_number(number))
    expect(record).to_contain_text(journey.registry_year)
    photo = page.locator(".xueji-photo img")
    expect(photo).to_be_visible()
    assert photo.evaluate("img => img.complete && img.naturalWidth") > 0, "the registry photo did not load"
    # The 志愿 picked before the check are still there.
    expect(first).to_have_text(re.compile("天津理工大学"))
    expect(second).to_have_text(re.compile("天津城建大学"))
    assert_fits(screen)
    screen.shot("xueji-record")

    # ---------------------------------------------------------------- 信息有误 + evidence
    screen.press(page.locator("details.report summary"))
    page.fill("#f-problem", journey.problem)
    screen.press(page.get_by_role("button", name="提交更正申请"))  # no image yet
    expect(error_of(page, "evidence")).to_have_text("请上传证明材料图片（JPG或PNG）")
    expect(page.locator("#f-problem")).to_have_value(journey.problem)
    expect(first).to_have_text(re.compile("天津理工大学"))
    screen.shot("xueji-report-no-image")
    page.set_input_files(
        "#f-evidence", files=[{"name": "毕业证明.png", "mimeType": "image/png", "buffer": evidence_png()}]
    )
    screen.press(page.get_by_role("button", name="提交更正申请"))
    notice = page.locator("#xueji .notice.warn")
    expect(notice).to_contain_text("已提交学籍/学历信息更正申请")
    expect(notice).to_contain_text(journey.problem)
    thumbnail = notice.locator(".evidence-list img")
    expect(thumbnail).to_have_count(1)
    assert thumbnail.evaluate("img => img.complete && img.naturalWidth") > 0, "the evidence image did not load"
    expect(first).to_have_text(re.compile("天津理工大学"))
    assert_fits(screen)
    screen.shot("xueji-reported")
    screen.press(page.get_by_role("button", name="完成报名"))

    # ---------------------------------------------------------------- 信息确认
    expect(page.locator("h1")).to_have_text("信息确认")
    summary = page.locator(".confirm-page")
    for text in (
        student.name,
        number,  # the student's own ID number and mobile, whole (issue 16)
        student.mobile,
        "汉族",
        "共青团员",
        "300072",
        "天津职业大学",
        "南开区招生考试中心",
        student.category,
    ):
        expect(summary).to_contain_text(text)
    preferences = summary.locator("ol.preferences-summary li")
    expect(preferences).to_have_count(2)
    expect(preferences.nth(0)).to_contain_text("志愿一")
    expect(preferences.nth(0)).to_contain_text("天津理工大学")
    expect(preferences.nth(0)).to_contain_text("计算机科学与技术")
    expect(preferences.nth(1)).to_contain_text("天津城建大学")
    expect(preferences.nth(1)).to_contain_text("工程造价")
    expect(summary).to_contain_text("您已报告学籍/学历信息有误")
    if student.category != "普通":
        expect(summary).to_contain_text(f"您的考生类别为“{student.category}”")
    for name in ("返回修改", "完成信息采集去身份认证"):
        expect(page.get_by_role("button", name=name)).to_be_enabled()
    expect(page.get_by_role("link", name="返回首页")).to_be_visible()
    assert_fits(screen)
    screen.shot("confirm")

    # ---------------------------------------------------------------- back on the 流程页面
    screen.press(page.get_by_role("link", name="返回首页"))
    expect(page).to_have_url(re.compile(r"/process$"))
    statuses = stage_statuses(page)
    assert (statuses["填写基本信息"], statuses["填写志愿信息"], statuses["信息确认"]) == ("已完成", "已完成", "进行中")
    assert statuses["身份认证"] == "未开始"
    expect(page.get_by_role("link", name="去确认")).to_be_visible()
    assert_fits(screen)
    screen.shot("process-confirming")

    # ---------------------------------------------------------------- 退出, then back by mobile
    screen.press(page.get_by_role("button", name="退出"))
    expect(page.get_by_role("link", name="注册登录")).to_be_visible()
    page.goto("/application")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    log_in(screen, student.mobile, PASSWORD)
    assert stage_statuses(page)["信息确认"] == "进行中"
