"""Flow names the accounts area (考生首页) relies on."""

from __future__ import annotations

from gzsb.workflow.needs import NEEDS

need = NEEDS.area("accounts")

REGISTRATION = need.window("registration", "the dates and status shown on the home page")
FEE_YUAN = need.setting("fee_yuan", "the fee shown on the home page")
