"""Flow names the 报名表 (registration form PDF) area relies on."""

from __future__ import annotations

from gzsb.workflow.needs import NEEDS

need = NEEDS.area("regform")

APPROVED = need.state("approved", "registration complete: the only state with a 报名表 to download")

REGISTRATION = need.window("registration", "its close gives the exam year of the serial number")
