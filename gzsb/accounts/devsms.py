"""The SMS dev page (/dev/sms): the offline SMS adapter's messages, for development only."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, current_app, render_template
from sqlalchemy import select

from gzsb.common.beijing import beijing_text
from gzsb.extensions import db
from gzsb.models import SmsMessage

log = logging.getLogger(__name__)
bp = Blueprint("devsms", __name__)


def dev_sms_enabled() -> bool:
    return bool(current_app.debug or current_app.testing or current_app.config.get("SMS_DEV_PAGE"))


@bp.get("/dev/sms")
def dev_sms() -> Any:
    """Messages of the offline SMS adapter, newest first (development only: 404 otherwise)."""
    if not dev_sms_enabled():
        abort(404)
    messages = db.session.scalars(select(SmsMessage).order_by(SmsMessage.id.desc()).limit(100)).all()
    rows = [
        {
            "id": m.id,
            "to": m.to_masked,
            "body": m.body,
            "at": beijing_text(m.created_at, "%Y-%m-%d %H:%M:%S"),
        }
        for m in messages
    ]
    return render_template("dev_sms.html", messages=rows)
