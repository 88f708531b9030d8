"""One run of each periodic task per period, however many consumers there are; the tick's heartbeat.

Every Huey consumer started without ``--no-periodic`` enqueues each periodic task when its
minute comes, so N consumers would run the tick N times a minute. ``huey.lock_task`` only
keeps two runs from overlapping; ``claim_period`` makes the runs after the first one of the
same period return at once: a ``SET NX`` on a key named by the task and the period start,
in the shared Redis, expiring after two periods. With the embedded SQLite queue there is one
consumer, and a process-local set does the same.

The tick writes its heartbeat (``beat``), which /readyz reads (``last_beat``): a deployment
whose periodic consumer died is not ready.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

log = logging.getLogger(__name__)

HEARTBEAT = "tick-heartbeat"
_local_claims: set[str] = set()
_local_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


def redis_client(url: str) -> redis.Redis:
    """One client (connection pool) per URL and process."""
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return client


def _prefix(config: Any) -> str:
    return f"gzsb:{config.get('HUEY_NAME', 'gzsb')}"


def claim_period(config: Any, task: str, now: datetime, period_seconds: int) -> bool:
    """True for the first caller of ``task`` in the period that contains ``now``."""
    start = int(now.timestamp()) // period_seconds * period_seconds
    key = f"{_prefix(config)}:period:{task}:{start}"
    url = config.get("REDIS_URL")
    if url:
        return bool(redis_client(url).set(key, "1", nx=True, ex=2 * period_seconds))
    with _local_lock:
        if key in _local_claims:
            return False
        _local_claims.add(key)
        return True


def _stamp_file(config: Any) -> Path:
    return Path(config.get("HUEY_SQLITE_PATH", "huey.sqlite3")).with_name("tick-heartbeat")


def beat(config: Any, now: datetime) -> None:
    """Record that the tick ran at ``now`` (Redis when configured, else a file next to the queue)."""
    url = config.get("REDIS_URL")
    if url:
        redis_client(url).set(f"{_prefix(config)}:{HEARTBEAT}", now.timestamp())
        return
    path = _stamp_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(now.timestamp()), encoding="ascii")


def last_beat(config: Any) -> datetime | None:
    """When the tick last ran, or None if never (or unreadable)."""
    url = config.get("REDIS_URL")
    if url:
        value = redis_client(url).get(f"{_prefix(config)}:{HEARTBEAT}")
    else:
        path = _stamp_file(config)
        value = path.read_text(encoding="ascii") if path.is_file() else None
    return datetime.fromtimestamp(float(value), UTC) if value else None
