"""Flow names the materials area relies on (上传审核)."""

from __future__ import annotations

from gzsb.workflow.needs import NEEDS

need = NEEDS.area("materials")

MATERIALS_PENDING = need.state("materials_pending", "the upload page: photos may be added and removed")
MATERIALS_REJECTED = need.state("materials_rejected", "the upload page after a rejection: photos may be changed")

SUBMIT_MATERIALS = need.event("submit_materials", "the 【提交审核】 button of the upload page")
