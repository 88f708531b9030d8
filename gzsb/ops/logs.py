"""Structured logs: one JSON object per line on stderr, with the request (or task) id.

A small formatter of our own instead of python-json-logger: the fields are few and fixed
(time, level, logger, message, request id, exception), and one module less to keep in step.

Why lines were lost before: gunicorn and huey_consumer configure only their own loggers, so
``gzsb.*`` records reached the root logger without a handler and Python's last-resort
handler printed WARNING and above only. ``configure_logging`` gives the ``gzsb`` logger its
own handler and level, so INFO lines of the app appear under both.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
# What we accept from a client or proxy as a request id; anything else gets a fresh one.
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
request_id: ContextVar[str] = ContextVar("gzsb_request_id", default="-")
access_log = logging.getLogger("gzsb.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per record; extra attributes given with ``extra=`` are kept."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and key not in entry:
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler we installed, so a second configure replaces it instead of adding one."""


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Give the ``gzsb`` logger one stderr handler (JSON or plain text) at ``level``."""
    logger = logging.getLogger("gzsb")
    for handler in [h for h in logger.handlers if isinstance(h, _OurHandler)]:
        logger.removeHandler(handler)
    handler = _OurHandler(sys.stderr)
    text = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(text))
    handler.addFilter(_with_request_id)
    logger.addHandler(handler)
    logger.setLevel(level.upper())


def _with_request_id(record: logging.LogRecord) -> bool:
    if not getattr(record, "request_id", None):
        record.request_id = request_id.get()
    return True


def new_id(given: str | None = None) -> str:
    return given if given and _GOOD_ID.match(given) else uuid.uuid4().hex


def install_request_ids(app: Flask) -> None:
    """Every request gets an id (the client's X-Request-ID if well-formed), echoed in the
    answer and carried by every log line; one JSON access line per request."""

    @app.before_request
    def _start() -> None:
        g.request_id = new_id(request.headers.get(REQUEST_ID_HEADER))
        g.request_started = time.perf_counter()
        request_id.set(g.request_id)

    @app.after_request
    def _finish(response: Response) -> Response:
        rid = g.get("request_id") or new_id()
        response.headers[REQUEST_ID_HEADER] = rid
        started = g.get("request_started")
        millis = round((time.perf_counter() - started) * 1000, 1) if started else None
        access_log.info(
            "%s %s %d",
            request.method,
            request.path,
            response.status_code,
            extra={"request_id": rid, "status": response.status_code, "duration_ms": millis},
        )
        return response

    @app.teardown_request
    def _forget(_exc: BaseException | None) -> None:
        request_id.set("-")
