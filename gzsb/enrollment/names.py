"""Flow names the enrollment area relies on (承诺书, 基本信息, 志愿, 学籍 check, 信息确认)."""

from __future__ import annotations

from gzsb.workflow.needs import NEEDS

need = NEEDS.area("enrollment")

REGISTRATION = need.window("registration", "the registration window that editing steps are open in")
MAX_PREFERENCES = need.setting("max_preferences", "how many 志愿 the preferences form accepts")

ACCEPT_PLEDGE = need.event("accept_pledge", "the 【我遵守】 button of the pledge page")
SUBMIT_BASIC_INFO = need.event("submit_basic_info", "the submit button of the basic info page")
CHECK_XUEJI = need.event("check_xueji", "the 学籍/学历 lookup button of the preferences page")
CONFIRM_XUEJI = need.event("confirm_xueji", "the 【信息正确】 answer to the 学籍/学历 lookup")
REPORT_XUEJI_ERROR = need.event("report_xueji_error", "the 【信息有误】 correction request form")
SUBMIT_PREFERENCES = need.event("submit_preferences", "the 【完成报名】 button of the preferences page")
BACK_TO_EDIT = need.event("back_to_edit", "the 【返回修改】 button of the confirmation page")
CONFIRM_INFO = need.event("confirm_info", "the confirm button of the confirmation page")
