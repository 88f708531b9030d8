"""Flow names the 账号申诉 area relies on."""

from __future__ import annotations

from gzsb.workflow.needs import NEEDS

need = NEEDS.area("appeals")

FROZEN = need.state("frozen", "where an approved appeal leaves the old account's application, kept for audit")
FREEZE_FOR_APPEAL = need.event("freeze_for_appeal", "fired on the old account's application when an appeal is approved")
