"""Gunicorn settings for production: ``gunicorn -c python:gzsb.ops.gunicorn_conf 'gzsb.app:create_app()'``.

Command-line flags still override these. With PROMETHEUS_MULTIPROC_DIR set, a dead worker's
live gauges are dropped from the shared folder (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import multiprocess

# Gunicorn's own lines (start, worker boot/exit) on stderr next to the app's JSON lines.
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def child_exit(_server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
