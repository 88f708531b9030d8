"""Prometheus metrics: request latency by endpoint, fire() outcomes, queue depths, face-job age.

Counters and histograms live in this process; under gunicorn with several workers set
``PROMETHEUS_MULTIPROC_DIR`` (an empty folder, cleared before start) and run gunicorn with
``-c python:gzsb.ops.gunicorn_conf``: every worker then writes its samples there and
/metrics adds them up (prometheus_client's multiprocess mode). Depths and ages are read
from the database and Redis when /metrics is scraped (a collector), so they are right
whichever worker answers.

/metrics answers only with the METRICS_TOKEN bearer token, or, when no token is set, only
to a loopback client.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from gzsb.extensions import db
from gzsb.identity.names import FACE_CHECKING
from gzsb.models import Application, Outbox
from gzsb.worker.periodic import redis_client
from gzsb.workflow import engine as workflow_engine

log = logging.getLogger(__name__)
bp = Blueprint("ops_metrics", __name__)

REQUEST_SECONDS = Histogram(
    "gzsb_request_seconds",
    "Time to answer a request, by endpoint",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FIRE_TOTAL = Counter("gzsb_fire_total", "Engine fire() calls by event and result", ["event", "result"])
FIRE_SECONDS = Histogram("gzsb_fire_seconds", "Time of one fire() call", ["event"])


def record_fire(event: str, result: str, seconds: float) -> None:
    try:
        FIRE_TOTAL.labels(event=event, result=result).inc()
        FIRE_SECONDS.labels(event=event).observe(seconds)
    except Exception:  # noqa: BLE001 - e.g. a missing multiprocess folder: the transition stands
        log.warning("metrics: fire() not recorded", exc_info=True)


# The engine reports every fire() here (the workflow package stays free of Prometheus).
workflow_engine.FIRE_OBSERVERS.append(record_fire)


class QueueCollector(Collector):
    """Read at scrape time: unfinished outbox items by kind, the Huey queue, the oldest face job."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        outbox = GaugeMetricFamily("gzsb_outbox_pending", "Outbox items not finished, by kind", labels=["kind"])
        queue = GaugeMetricFamily("gzsb_queue_depth", "Tasks waiting in the Huey queue (Redis)")
        face = GaugeMetricFamily("gzsb_face_job_age_seconds", "Age of the oldest face job still waited for")
        with self.app.app_context():
            try:
                for kind, count in db.session.execute(
                    select(Outbox.kind, func.count()).where(Outbox.done_at.is_(None)).group_by(Outbox.kind)
                ):
                    outbox.add_metric([kind], count)
                oldest = db.session.scalar(
                    select(func.min(Outbox.created_at)).where(
                        Outbox.kind == "job",
                        Outbox.application_id.in_(select(Application.id).where(Application.state == FACE_CHECKING)),
                    )
                )
                if oldest is not None:
                    oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
                face.add_metric([], max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest else 0.0)
            except Exception:  # noqa: BLE001 - a scrape must not fail because the database is down
                log.warning("metrics: database gauges unavailable", exc_info=True)
            finally:
                db.session.rollback()
            url = self.app.config.get("REDIS_URL")
            if url:
                try:
                    name = self.app.config.get("HUEY_NAME", "gzsb")
                    queue.add_metric([], redis_client(url).llen(f"huey.redis.{name}"))
                except Exception:  # noqa: BLE001
                    log.warning("metrics: queue depth unavailable", exc_info=True)
        yield from (outbox, queue, face)


def _allowed() -> bool:
    token = current_app.config.get("METRICS_TOKEN") or ""
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())
    return (request.remote_addr or "") in {"127.0.0.1", "::1"}


@bp.get("/metrics")
def metrics() -> Any:
    if not _allowed():
        abort(403)
    registry = current_app.extensions["gzsb.metrics_registry"]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def install_metrics(app: Flask) -> None:
    """Time every request; serve /metrics from this process or from the multiprocess folder."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_SECONDS)
        registry.register(FIRE_TOTAL)
        registry.register(FIRE_SECONDS)
    registry.register(QueueCollector(app))
    app.extensions["gzsb.metrics_registry"] = registry

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None:
            endpoint = request.endpoint or "unmatched"  # 404s share one label (no label per URL)
            status = f"{response.status_code // 100}xx"
            REQUEST_SECONDS.labels(endpoint=endpoint, method=request.method, status=status).observe(
                time.perf_counter() - started
            )
        return response
