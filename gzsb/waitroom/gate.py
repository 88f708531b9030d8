"""The waiting room as a WSGI layer in front of the Flask app.

It answers before Flask sees the request (no routing, no session, no database): an admitted
visitor (a valid signed admission cookie) passes after one HMAC; anybody else costs one Redis
script call and gets either the app (admitted now: the admission cookie is added to the
app's answer) or a small page with their place, refreshed by the browser itself.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qs

from gzsb.common.beijing import beijing_text
from gzsb.waitroom.room import Room, Settings, Verdict
from gzsb.waitroom.tickets import Signer, new_ticket, valid_ticket

log = logging.getLogger(__name__)

TICKET_COOKIE = "gzsb_wr"
ADMIT_COOKIE = "gzsb_wr_admit"
STATUS_PATH = "/waitroom/status"
# Where staff, admins and auditors are sent to log in (login_required adds next=…).
STAFF_AREAS = ("/staff/", "/admin/", "/audit/")
PAGE = Template((Path(__file__).resolve().parent.parent / "templates" / "waitroom.html").read_text(encoding="utf-8"))
HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
]
JSON_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class GateOptions:
    bypass: tuple[str, ...]
    secure: bool
    settings_ttl: float = 2.0  # how long a node trusts its copy of the on/off switch


def cookies_of(environ: dict[str, Any]) -> dict[str, str]:
    """Our two cookies only (the full parser is not needed on this path)."""
    found: dict[str, str] = {}
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name in (TICKET_COOKIE, ADMIT_COOKIE):
            found[name] = value
    return found


def _wait_text(seconds: float) -> str:
    return "不到 1 分钟" if seconds < 60 else f"约 {math.ceil(seconds / 60)} 分钟"


class Gate:
    def __init__(
        self, app: Callable[..., Any], room: Room, signer: Signer, clock: Callable[[], datetime], options: GateOptions
    ) -> None:
        self.app = app
        self.room = room
        self.signer = signer
        self.clock = clock
        self.options = options
        self._settings: Settings = room.defaults
        self._settings_at = -math.inf
        self._jitter = random.Random()  # refresh jitter only; not security relevant

    # ---------------------------------------------------------------- WSGI

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        status_call = path == STATUS_PATH
        if not status_call and self.bypassed(path, environ):
            return self.app(environ, start_response)
        settings = self.settings()
        if not settings.enabled and not status_call:
            return self.app(environ, start_response)
        now = self.clock().timestamp()
        cookies = cookies_of(environ)
        admission = self.signer.verify(cookies.get(ADMIT_COOKIE), now)
        if admission is not None and status_call:  # already in: no place to take
            return self._status(start_response, Verdict("admit"), admission.ticket, now, settings, [])
        if admission is not None:
            extra = []
            if admission.expires - now < settings.admit_seconds / 2:  # sliding: active visitors stay in
                extra.append(self._admit_cookie(admission.ticket, now, settings))
                self._safely(self.room.touch, admission.ticket, now)
            return self._pass(environ, start_response, extra)
        ticket = valid_ticket(cookies.get(TICKET_COOKIE)) or new_ticket()
        verdict = self._safely(self.room.visit, ticket, now) or Verdict("off")
        cookie = [] if cookies.get(TICKET_COOKIE) == ticket else [self._cookie(TICKET_COOKIE, ticket, 86400)]
        if status_call:
            return self._status(start_response, verdict, ticket, now, settings, cookie)
        if verdict.status == "off":
            return self.app(environ, start_response)
        if verdict.status == "admit":
            return self._pass(environ, start_response, [self._admit_cookie(ticket, now, settings)])
        return self._waiting(environ, start_response, verdict, now, settings, cookie)

    def bypassed(self, path: str, environ: dict[str, Any]) -> bool:
        if path.startswith(self.options.bypass):
            return True
        if path == "/login":  # staff, admins and auditors log in without queueing
            target = parse_qs(environ.get("QUERY_STRING", "")).get("next", [""])[0]
            return target.startswith(STAFF_AREAS)
        return False

    def settings(self) -> Settings:
        """The switch and parameters, re-read from Redis every few seconds per process."""
        at = time.monotonic()
        if at - self._settings_at > self.options.settings_ttl:
            self._settings = self._safely(self.room.settings) or self.room.defaults
            self._settings_at = at
        return self._settings

    def _safely(self, call: Callable[..., Any], *args: Any) -> Any:
        # Redis down: let visitors through rather than shut the site (the room only shapes load).
        try:
            return call(*args)
        except Exception:
            log.exception("waiting room: Redis call failed, letting the request through")
            return None

    # ---------------------------------------------------------------- answers

    def _cookie(self, name: str, value: str, max_age: int) -> tuple[str, str]:
        secure = "; Secure" if self.options.secure else ""
        return ("Set-Cookie", f"{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}")

    def _admit_cookie(self, ticket: str, now: float, settings: Settings) -> tuple[str, str]:
        lifetime = int(settings.admit_seconds)
        return self._cookie(ADMIT_COOKIE, self.signer.sign(ticket, int(now) + lifetime), lifetime)

    def _pass(self, environ: dict[str, Any], start_response: StartResponse, extra: list[tuple[str, str]]) -> Any:
        if not extra:
            return self.app(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, list(headers) + extra, exc_info)

        return self.app(environ, start)

    def _refresh(self, verdict: Verdict) -> int:
        # Spread the reloads so that a crowd does not come back in the same second.
        base = min(30.0, max(5.0, verdict.wait_seconds / 4))
        if verdict.status == "early":
            base = min(base, max(1.0, verdict.wait_seconds))
        return int(base + self._jitter.random() * 5)

    def _payload(self, verdict: Verdict, now: float, settings: Settings) -> dict[str, Any]:
        body: dict[str, Any] = {"status": verdict.status, "refresh_seconds": self._refresh(verdict)}
        if verdict.status == "wait":
            body.update(ahead=verdict.ahead, wait_seconds=round(verdict.wait_seconds))
        elif verdict.status == "early":
            opens = datetime.fromtimestamp(settings.opens or now, UTC)
            body.update(collected=verdict.ahead, opens=opens.isoformat(), opens_in_seconds=round(verdict.wait_seconds))
        return body

    def _status(
        self,
        start_response: StartResponse,
        verdict: Verdict,
        ticket: str,
        now: float,
        settings: Settings,
        cookie: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        """JSON for pages or apps that poll instead of reloading."""
        headers = JSON_HEADERS + cookie
        if verdict.status == "admit":
            headers = headers + [self._admit_cookie(ticket, now, settings)]
        body = json.dumps(self._payload(verdict, now, settings), ensure_ascii=False).encode()
        start_response("200 OK", headers + [("Content-Length", str(len(body)))])
        return [body]

    def _waiting(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        verdict: Verdict,
        now: float,
        settings: Settings,
        cookie: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        payload = self._payload(verdict, now, settings)
        retry = [("Retry-After", str(payload["refresh_seconds"]))]
        if environ.get("PATH_INFO", "").startswith("/api/"):
            payload.update(error="waiting_room", message="当前访问人数较多，请稍后再试")
            body = json.dumps(payload, ensure_ascii=False).encode()
            start_response("503 Service Unavailable", JSON_HEADERS + retry + cookie)
            return [body]
        if verdict.status == "early":
            opens = beijing_text(datetime.fromtimestamp(settings.opens, UTC))
            heading = "报名尚未开始，请在本页等候"
            text = (
                f"<p>网上报名将于 <b>{opens}</b> 开始。</p>"
                "<p>开始时，所有在此之前进入本页的考生将<b>随机排序</b>，早到晚到机会相同。</p>"
                f"<p>当前已有 {verdict.ahead} 人在等候。</p>"
            )
        else:
            heading = "当前访问人数较多，正在排队"
            text = (
                f'<p>您前面还有 <span class="n" id="ahead">{verdict.ahead}</span> 人</p>'
                f"<p>预计等待时间：{_wait_text(verdict.wait_seconds)}</p>"
            )
        html = PAGE.substitute(
            status=verdict.status, heading=heading, body=text, refresh=payload["refresh_seconds"]
        ).encode()
        # A POST cannot be replayed by a refresh: say so with 503 (the form stays in the browser).
        status = "200 OK" if environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD") else "503 Service Unavailable"
        start_response(status, HEADERS + retry + cookie + [("Content-Length", str(len(html)))])
        return [html]
