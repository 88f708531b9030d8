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
# Seconds an idle kept-alive connection stays open (gunicorn's default is 2). The load
# balancer's idle timeout towards the nodes must be shorter, so that it never sends a request
# on a connection gunicorn is closing (that request would fail).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))


def child_exit(_server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
