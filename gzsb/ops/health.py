"""/healthz (the process answers) and /readyz (it can serve: database, Redis, a recent tick).

A load balancer takes a node out while /readyz answers 503; an orchestrator restarts a
process whose /healthz stops answering. Both are JSON and touch no session or template.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from gzsb.extensions import db
from gzsb.worker.periodic import last_beat, redis_client

log = logging.getLogger(__name__)
bp = Blueprint("ops_health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


def _database() -> dict[str, Any]:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return {"ok": True}
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        db.session.rollback()
        return {"ok": False, "error": type(exc).__name__}


def _redis() -> dict[str, Any]:
    url = current_app.config.get("REDIS_URL")
    if not url:
        return {"ok": True, "configured": False}
    try:
        return {"ok": bool(redis_client(url).ping())}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": type(exc).__name__}


def _tick() -> dict[str, Any]:
    limit = int(current_app.config["READY_TICK_MAX_AGE_SECONDS"])
    if limit <= 0:
        return {"ok": True, "checked": False}
    try:
        beat = last_beat(current_app.config)
    except Exception as exc:  # noqa: BLE001 - Redis down: reported by its own check too
        return {"ok": False, "error": type(exc).__name__}
    if beat is None:
        return {"ok": False, "age_seconds": None}
    age = (datetime.now(UTC) - beat).total_seconds()
    return {"ok": age <= limit, "age_seconds": round(age, 1), "limit_seconds": limit}


@bp.get("/readyz")
def readyz() -> Any:
    checks = {"database": _database(), "redis": _redis(), "tick": _tick()}
    ready = all(check["ok"] for check in checks.values())
    if not ready:
        log.warning("not ready: %s", {name: check for name, check in checks.items() if not check["ok"]})
    return jsonify({"status": "ready" if ready else "not ready", "checks": checks}), 200 if ready else 503
