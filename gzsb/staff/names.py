"""Flow names the confirmation-point staff console relies on: its queues are states."""

from __future__ import annotations

from gzsb.workflow.needs import NEEDS

need = NEEDS.area("staff")

MATERIALS_QUEUE = need.state("materials_review", "the staff queue of materials to review")
IDENTITY_QUEUE = need.state("manual_identity", "the staff queue of manual identity checks")

APPROVE_MATERIALS = need.event("approve_materials", "the approve button of the materials queue")
REJECT_MATERIALS = need.event("reject_materials", "the reject button of the materials queue")
APPROVE_IDENTITY = need.event("approve_identity", "the approve button of the manual identity queue")
REJECT_IDENTITY = need.event("reject_identity", "the reject button of the manual identity queue")
RESOLVE_XUEJI_CORRECTION = need.event("resolve_xueji_correction", "the decision on a 学籍/学历 correction request")
