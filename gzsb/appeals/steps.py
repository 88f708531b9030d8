"""The one step of the 账号申诉 area: freezing the old account's application.

``freeze_for_appeal`` takes the application from any state to ``frozen`` (final, kept for
audit). The step decides the case in the same transaction as the history event
(``service.approve_locked``): the case must be pending and concern this application's
account, so the event cannot be fired without an appeal to back it, and a second decider
loses cleanly.
"""

from __future__ import annotations

import logging
from typing import Any

from gzsb.appeals.service import approve_locked
from gzsb.common.fields import StepSchema, text
from gzsb.enrollment.service import services_of
from gzsb.workflow.engine import StepContext
from gzsb.workflow.registry import STEPS

log = logging.getLogger(__name__)


class FreezeSchema(StepSchema):
    case = text("申诉编号", max_length=20)


@STEPS.register("appeal_freeze", schema=FreezeSchema(), example=lambda: {"case": "SS20261201000001"})
def appeal_freeze(ctx: StepContext, payload: dict[str, Any]) -> None:
    services = services_of(ctx, "the appeal case to decide")
    approve_locked(
        services.session,
        payload["case"],
        account_id=ctx.record.account_id,
        actor=ctx.actor.id,
        now=ctx.now,
        application_uid=ctx.record.uid,
    )
    ctx.section("appeal")["freeze"] = {"case": payload["case"], "by": ctx.actor.id, "at": ctx.now.isoformat()}
