"""The waiting room for the opening hour (issue 17): a WSGI layer shared by every node through Redis.

``install(app)`` is the one line in ``create_app``; without a Redis URL it does nothing.
``room.py`` holds the queue (Lua on Redis), ``tickets.py`` the signed admissions, ``gate.py``
the WSGI layer and its page.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import redis

from gzsb.waitroom.gate import Gate, GateOptions
from gzsb.waitroom.room import Room, Settings
from gzsb.waitroom.tickets import Signer

log = logging.getLogger(__name__)
EXTENSION = "gzsb.waitroom"


def opening_timestamp(text: str) -> float:
    """``2027-01-05T09:00:00+08:00`` → Unix time; empty → 0 (no opening)."""
    if not text:
        return 0.0
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"the opening {text!r} needs a zone, e.g. 2027-01-05T09:00:00+08:00")
    return moment.timestamp()


def room_from_config(config: Any) -> Room | None:
    url = config.get("WAITROOM_REDIS_URL") or ""
    if not url:
        return None
    defaults = Settings(
        enabled=bool(config["WAITROOM_ENABLED"]),
        rate=float(config["WAITROOM_RATE"]),
        cap=int(config["WAITROOM_ACTIVE_CAP"]),
        opens=opening_timestamp(config["WAITROOM_OPENS"]),
        admit_seconds=int(config["WAITROOM_ADMIT_SECONDS"]),
    )
    return Room(redis.Redis.from_url(url), defaults, prefix=config["WAITROOM_PREFIX"])


def install(app: Any) -> None:
    """Put the gate in front of ``app`` (a Flask app) when a Redis URL is configured."""
    room = room_from_config(app.config)
    if room is None:
        return
    options = GateOptions(
        bypass=tuple(app.config["WAITROOM_BYPASS"]),
        secure=bool(app.config["SESSION_COOKIE_SECURE"]),
        settings_ttl=float(app.config["WAITROOM_SETTINGS_TTL"]),
    )
    gate = Gate(app.wsgi_app, room, Signer(app.config["SECRET_KEY"]), app.extensions["gzsb.clock"], options)
    app.wsgi_app = gate
    app.extensions[EXTENSION] = gate
    log.info("waiting room installed (redis prefix %s)", app.config["WAITROOM_PREFIX"])
