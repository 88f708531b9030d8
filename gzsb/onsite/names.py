"""Flow names the 现场确认 (onsite appointment) area relies on."""

from __future__ import annotations

from gzsb.workflow.needs import NEEDS

need = NEEDS.area("onsite")

# Failing online identity sends the student to the 确认点 in person.
MANUAL_IDENTITY = need.state("manual_identity", "waiting for the 确认点's manual identity check: 现场确认 needed")
BOOK_ONSITE = need.event("book_onsite", "the 【预约】 button of the 现场确认 page (book or change a time slot)")
CANCEL_ONSITE = need.event("cancel_onsite", "the 【取消预约】 button of the 现场确认 page")

# Events of this area that the state pages must not show as their own buttons (they have
# the 现场确认 page).
ONSITE_EVENTS = frozenset({BOOK_ONSITE, CANCEL_ONSITE})
