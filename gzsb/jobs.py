"""Huey tasks. SQLite storage by default (a queue in a file); Redis when REDIS_URL is set.

Run a consumer with ``huey_consumer gzsb.jobs.huey``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from huey import RedisHuey, SqliteHuey, crontab

from gzsb.config import Config

log = logging.getLogger(__name__)


def make_huey(config: Any = Config) -> Any:
    if config.REDIS_URL:
        return RedisHuey("gzsb", url=config.REDIS_URL, immediate=config.HUEY_IMMEDIATE)
    Path(config.HUEY_SQLITE_PATH).parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("gzsb", filename=config.HUEY_SQLITE_PATH, immediate=config.HUEY_IMMEDIATE)


huey = make_huey()
_flask_app = None


def use_app(app: Any) -> None:
    """Run tasks against this Flask app (tests, or a consumer started with its own config)."""
    global _flask_app
    _flask_app = app


def flask_app() -> Any:
    global _flask_app
    if _flask_app is None:
        from gzsb.app import create_app

        _flask_app = create_app()
    return _flask_app


def render_sms(template: str, account: Any) -> str:
    return flask_app().config["SMS_TEMPLATES"][template].format(name=account.name)


@huey.periodic_task(crontab(minute="*"))
def tick() -> dict[str, int]:
    """Every minute: due timers (e.g. unpaid orders) and pending SMS."""
    from gzsb.adapters.sms import sms_sender
    from gzsb.extensions import db
    from gzsb.runtime import engine, vault
    from gzsb.worker import drain_outbox, fire_due_timers

    with flask_app().app_context():
        now = datetime.now(UTC)
        fired = fire_due_timers(db.session, engine(), now)
        sent = drain_outbox(db.session, vault(), sms_sender(flask_app().config, db.session, vault()), render_sms, now)
    if fired or sent:
        log.info("tick: %d timer(s) fired, %d SMS sent", fired, sent)
    return {"timers": fired, "sms": sent}
