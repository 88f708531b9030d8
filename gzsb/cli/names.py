"""Flow names the demo seeder walks: it drives applicants into every state by these events.

Kept apart from the product's needs (``gzsb.workflow.needs.NEEDS``): an admin's flow is not
refused because the demo data could not be seeded on it, but ``flask demo seed`` checks
these before writing anything and names what is missing.
"""

from __future__ import annotations

from gzsb.workflow.needs import Needs

DEMO = Needs("demo")
need = DEMO.area("demo")

REGISTRATION = need.window("registration", "the demo clock is set inside it")

STARTED = need.state("started", "applicants at the 承诺书")
PLEDGED = need.state("pledged", "applicants at 基本信息")
PREFERENCES = need.state("preferences", "applicants at 志愿")
CONFIRMING = need.state("confirming", "applicants at 信息确认")
IDENTITY_PENDING = need.state("identity_pending", "applicants at 身份认证")
FACE_CHECKING = need.state("face_checking", "applicants waiting for the face match")
MANUAL_IDENTITY = need.state("manual_identity", "applicants waiting for the manual identity check")
IDENTITY_VERIFIED = need.state("identity_verified", "applicants at 网上支付")
PAYMENT_PENDING = need.state("payment_pending", "applicants with an open order")
MATERIALS_PENDING = need.state("materials_pending", "applicants who must upload materials")
MATERIALS_REVIEW = need.state("materials_review", "applicants whose materials wait for review")
MATERIALS_REJECTED = need.state("materials_rejected", "applicants whose materials were rejected")
APPROVED = need.state("approved", "applicants whose registration is complete")
FROZEN = need.state("frozen", "applications frozen by an approved 账号申诉")

ACCEPT_PLEDGE = need.event("accept_pledge", "the route to 基本信息")
SUBMIT_BASIC_INFO = need.event("submit_basic_info", "the route to 志愿")
CHECK_XUEJI = need.event("check_xueji", "the 学籍/学历 lookup on the route")
CONFIRM_XUEJI = need.event("confirm_xueji", "the 学籍/学历 confirmation on the route")
SUBMIT_PREFERENCES = need.event("submit_preferences", "the route to 信息确认")
CONFIRM_INFO = need.event("confirm_info", "the route to 身份认证")
GIVE_FACE_CONSENT = need.event("give_face_consent", "the consent on the route")
UPLOAD_IDENTITY = need.event("upload_identity", "the route to the face match")
REQUEST_MANUAL_IDENTITY = need.event("request_manual_identity", "the route to the manual check")
FACE_MATCHED = need.event("face_matched", "the route to 网上支付")
CREATE_ORDER = need.event("create_order", "the route to an open order")
PAYMENT_SUCCEEDED = need.event("payment_succeeded", "the route past 网上支付")
SUBMIT_MATERIALS = need.event("submit_materials", "the route to the materials review")
REJECT_MATERIALS = need.event("reject_materials", "the route to rejected materials")
FREEZE_FOR_APPEAL = need.event("freeze_for_appeal", "the route to a frozen application")
