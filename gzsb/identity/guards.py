"""Guards of §2.9 身份认证."""

from __future__ import annotations

from gzsb.workflow.engine import GuardContext
from gzsb.workflow.registry import GUARDS


@GUARDS.register("face_consent_given")
def face_consent_given(ctx: GuardContext, _args: None) -> str | None:
    """The student agreed to the processing of their face data (the manual check needs no consent)."""
    if not ctx.get("identity", "consent", "given_at"):
        return "请先阅读并同意人脸信息处理说明，或选择【申请人工认证】"
    return None
