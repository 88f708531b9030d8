"""Per-client (IP) rate limits of the account pages.

``IP_LOGIN_FAILURES`` failed logins (or 找回用户名 misses) within ``IP_WINDOW_SECONDS`` pause
that client for ``IP_BLOCK_SECONDS`` (429), and at most ``IP_SMS_PER_HOUR`` verification
codes per hour. These counters live in memory, per process (``ClientLimiter``): simple and
free of database writes on the hot path, but with N server processes a client gets up to N
times the budget and a restart forgets it. The per-account lock and the per-number SMS
limits (database) are the ones that hold across processes; the IP limits slow down spraying
many accounts from one client.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import datetime, timedelta

from flask import current_app, request

from gzsb.errors import RateLimited

log = logging.getLogger(__name__)

TOO_MANY = "操作过于频繁，请稍后再试"


class ClientLimiter:
    """Sliding-window counters per (bucket, client), in this process's memory.

    ``hit`` records one event; when ``limit`` events fall within ``window`` the client is
    blocked for ``block``. Thread-safe; old entries are dropped as they age out.
    """

    MAX_KEYS = 50_000

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], deque[datetime]] = {}
        self._blocked: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def blocked(self, bucket: str, client: str, now: datetime) -> bool:
        with self._lock:
            until = self._blocked.get((bucket, client))
            if until is None:
                return False
            if until <= now:
                del self._blocked[(bucket, client)]
                return False
            return True

    def hit(self, bucket: str, client: str, now: datetime, *, limit: int, window: timedelta, block: timedelta) -> bool:
        """Count one event; True if the client is now blocked."""
        key = (bucket, client)
        with self._lock:
            if len(self._events) > self.MAX_KEYS:
                self._prune(now, window)
            events = self._events.setdefault(key, deque())
            events.append(now)
            while events and events[0] <= now - window:
                events.popleft()
            if len(events) >= limit:
                self._blocked[key] = now + block
                events.clear()
                return True
            return False

    def _prune(self, now: datetime, window: timedelta) -> None:
        for key in [k for k, v in self._events.items() if not v or v[-1] <= now - window]:
            del self._events[key]
        for key in [k for k, until in self._blocked.items() if until <= now]:
            del self._blocked[key]


def limiter() -> ClientLimiter:
    return current_app.extensions.setdefault("gzsb.client_limiter", ClientLimiter())


def client() -> str:
    # Behind a reverse proxy, the deployment must apply werkzeug's ProxyFix so that this is
    # the real client and not the proxy.
    return request.remote_addr or "unknown"


def _ip_window() -> tuple[timedelta, timedelta]:
    config = current_app.config
    return timedelta(seconds=config["IP_WINDOW_SECONDS"]), timedelta(seconds=config["IP_BLOCK_SECONDS"])


def ip_failure(bucket: str, now: datetime) -> None:
    window, block = _ip_window()
    if limiter().hit(bucket, client(), now, limit=current_app.config["IP_LOGIN_FAILURES"], window=window, block=block):
        log.warning("client %s paused after repeated %s failures", client(), bucket)


def ip_sms_allowed(now: datetime) -> None:
    """At most IP_SMS_PER_HOUR codes per client and hour (SMS pumping through one client)."""
    if limiter().blocked("sms", client(), now):
        raise RateLimited("too many SMS from this client", public=TOO_MANY)
    hour = timedelta(hours=1)
    # The hit that reaches the limit still goes through; the next one is refused.
    limiter().hit("sms", client(), now, limit=current_app.config["IP_SMS_PER_HOUR"], window=hour, block=hour)
