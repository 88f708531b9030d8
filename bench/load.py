"""Two app nodes on PostgreSQL + Redis under a mixed student load; one node killed mid-run.

.venv/bin/python -m bench.load [--duration 600] [--users 32] [--kill-at SECONDS] [--nodes 2]

Two gunicorn instances of the app (the production flags: gthread workers) on two loopback
ports share one PostgreSQL database and one Redis (Huey's queue); a bare Flask app
(``bench/bare.py``) on the same gunicorn flags is the baseline, driven first by the same
driver with the same number of users. Then ``--users`` simulated students spread their
requests over the live nodes for ``--duration`` seconds. Each user owns a few seeded students
and, per student, repeats a journey: 流程页面 (GET /process), the step page (GET
/application), the next step of the path POSTed with the page's CSRF token (accept_pledge …
give_face_consent, once each), two status polls (GET /application/status, what the 比对中
page polls), and every fifth journey an SMS code request (GET + POST /recover/password/code).
Log-in (GET + POST /login) happens at a student's first journey and again every
``--relogin-every`` journeys.

At ``--kill-at`` one node is killed with SIGKILL (master and workers). The driver balances like
a proxy with passive health checks (nginx's ``proxy_next_upstream error``): a refused
connection is retried at once on another node and that node is left out for two seconds;
a request the dying node had already accepted fails and is counted as an error. Reported per
window (whole run, before and after the kill): requests/s, p50/p95/p99, errors, and requests/s
as a share of the bare app's.

Why a small asyncio + aiohttp driver rather than locust: the journey needs per-student cookies,
CSRF tokens and the step order, which are a few lines here; aiohttp is already installed (no new
dependency), and one event loop drives all users with little CPU, which matters when the driver
shares 2 cores with the servers, PostgreSQL and Redis. wrk (bench.web) cannot follow a journey.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy.engine import make_url

from bench.common import OUT, PATH, percentile
from bench.serve import KEEPALIVE, cpu_seconds, free_port, stop_gunicorn
from bench.web import PASSWORD, SERVER_ENV, log, seed, start_server
from gzsb.cli.demo import basic_info, demo_student

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gzsb_bench_load"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# The steps a student POSTs from the step page (the ones after need photo uploads).
STEPS = [(event, spec) for event, by_student, spec in PATH[:7] if by_student]
DEAD_FOR = 2.0  # seconds a node that refused a connection is left out
# The nodes sit behind a (simulated) load balancer: each student's requests carry their own
# address in X-Forwarded-For, as the balancer would add it, so per-IP limits count per student
# as in production (without it every student is 127.0.0.1 and one IP budget throttles all).
# A simulated student asks for an SMS code every fifth journey, far more often than the
# 6 an hour a real number may have: the per-number and per-IP SMS budgets are raised.
LOAD_ENV = {"PROXY_COUNT": "1", "SMS_PER_MOBILE": "1000000/hour", "SMS_PER_IP": "1000000/hour"}


def forwarded_for(index: int) -> str:
    return f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"


@dataclass
class Sample:
    at: float  # seconds since the start of the window
    seconds: float
    kind: str
    ok: bool


@dataclass
class Balancer:
    nodes: list[str]
    dead_until: dict[str, float] = field(default_factory=dict)
    turn: int = 0
    rerouted: int = 0

    def pick(self, exclude: set[str]) -> str | None:
        now = time.monotonic()
        live = [n for n in self.nodes if n not in exclude and self.dead_until.get(n, 0) <= now]
        if not live:
            return None
        self.turn += 1
        return live[self.turn % len(live)]


@dataclass
class Run:
    balancer: Balancer
    started: float
    samples: list[Sample] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    error_times: list[tuple[float, str]] = field(default_factory=list)  # (started at s, what)

    async def request(
        self, http: aiohttp.ClientSession, kind: str, method: str, path: str, expect: int, data: Any = None
    ) -> str:
        """One request through the balancer; the body ('' on failure)."""
        t0 = time.perf_counter()
        tried: set[str] = set()
        while True:
            node = self.balancer.pick(tried)
            if node is None:
                return self._done(kind, t0, False, "no live node")
            tried.add(node)
            try:
                async with http.request(method, node + path, data=data, allow_redirects=False) as answer:
                    body = await answer.text()
                    ok = answer.status == expect
                    return body if self._done(kind, t0, ok, f"{kind}: HTTP {answer.status}") else ""
            except aiohttp.ClientConnectorError:
                # Refused before anything was sent: a proxy tries the next node.
                self.balancer.dead_until[node] = time.monotonic() + DEAD_FOR
                self.balancer.rerouted += 1
            except TimeoutError:
                return self._done(kind, t0, False, f"{kind}: timeout")
            except aiohttp.ClientError as exc:  # the node went away with the request
                self.balancer.dead_until[node] = time.monotonic() + DEAD_FOR
                return self._done(kind, t0, False, f"{kind}: {type(exc).__name__}")

    def _done(self, kind: str, t0: float, ok: bool, error: str) -> str:
        now = time.perf_counter()
        self.samples.append(Sample(now - self.started, now - t0, kind, ok))
        self.kinds[kind] += 1
        if not ok:
            self.errors[error] += 1
            self.error_times.append((round(t0 - self.started, 1), error))
        return "ok" if ok else ""


@dataclass
class Student:
    index: int
    login: str
    http: aiohttp.ClientSession
    step: int = 0
    journeys: int = 0


def step_form(student: Student, spec: Any) -> dict[str, str]:
    if spec == "basic_info":
        payload = {**basic_info(demo_student(student.index), "NK01"), "category": "普通"}
    else:
        payload = dict(spec)
    form: dict[str, str] = {}
    for key, value in payload.items():
        if isinstance(value, list):  # 志愿: choices.0.institution=…
            for n, item in enumerate(value):
                for sub, v in item.items():
                    form[f"{key}.{n}.{sub}"] = str(v)
        else:
            form[key] = "true" if value is True else str(value)
    return form


async def log_in(run: Run, s: Student) -> None:
    page = await run.request(s.http, "log-in", "GET", "/login", 200)
    token = CSRF.search(page)
    if token:
        data = {"login": s.login, "password": PASSWORD, "csrf_token": token.group(1)}
        await run.request(s.http, "log-in", "POST", "/login", 302, data)


async def journey(run: Run, s: Student, relogin_every: int) -> None:
    if s.journeys % relogin_every == 0:
        await log_in(run, s)
    s.journeys += 1
    await run.request(s.http, "流程页面", "GET", "/process", 200)
    page = await run.request(s.http, "step page", "GET", "/application", 200)
    token = CSRF.search(page)
    if token and s.step < len(STEPS):
        event, spec = STEPS[s.step]
        data = {**step_form(s, spec), "csrf_token": token.group(1)}
        if await run.request(s.http, "step POST", "POST", f"/application/events/{event}", 302, data):
            s.step += 1
    for _ in range(2):
        await run.request(s.http, "status poll", "GET", "/application/status", 200)
    if s.journeys % 5 == 0:
        form = await run.request(s.http, "SMS code", "GET", "/recover/password", 200)
        token = CSRF.search(form)
        if token:
            mobile = demo_student(s.index).mobile
            data = {"id_number": s.login, "mobile": mobile, "csrf_token": token.group(1)}
            await run.request(s.http, "SMS code", "POST", "/recover/password/code", 200, data)


async def drive(run: Run, students: list[Student], users: int, until: float, relogin_every: int) -> None:
    async def user(mine: list[Student]) -> None:
        n = 0
        while time.monotonic() < until:
            await journey(run, mine[n % len(mine)], relogin_every)
            n += 1

    await asyncio.gather(*(user(students[u::users]) for u in range(users)))


async def drive_bare(run: Run, users: int, until: float) -> None:
    async def user(http: aiohttp.ClientSession) -> None:
        while time.monotonic() < until:
            await run.request(http, "bare", "GET", "/", 200)

    sessions = [aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) for _ in range(users)]
    try:
        await asyncio.gather(*(user(h) for h in sessions))
    finally:
        for h in sessions:
            await h.close()


def summary(samples: list[Sample], seconds: float) -> dict[str, Any]:
    times = [s.seconds for s in samples]
    return {
        "requests": len(samples),
        "rate": len(samples) / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(times, 50) * 1e3 if times else 0.0,
        "p95_ms": percentile(times, 95) * 1e3 if times else 0.0,
        "p99_ms": percentile(times, 99) * 1e3 if times else 0.0,
        "errors": sum(not s.ok for s in samples),
    }


async def main_async(args: argparse.Namespace, logins: list[str]) -> dict[str, Any]:
    env = {**SERVER_ENV, **LOAD_ENV, "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url}
    bare_port = free_port()
    bare = start_server("bench.bare:app", bare_port, args.workers, args.threads, {}, "load-bare")
    try:
        base = Run(Balancer([f"http://127.0.0.1:{bare_port}"]), time.perf_counter())
        await drive_bare(base, args.users, time.monotonic() + args.bare_seconds)
    finally:
        stop_gunicorn(bare)
    bare_rate = summary(base.samples, args.bare_seconds)
    log(f"bare app: {bare_rate['rate']:.0f} requests/s, p95 {bare_rate['p95_ms']:.0f} ms")

    ports = [free_port() for _ in range(args.nodes)]
    nodes = [
        start_server("gzsb.app:create_app()", port, args.workers, args.threads, env, f"load-node{i + 1}")
        for i, port in enumerate(ports)
    ]
    killed_at: float | None = None
    database = make_url(args.database_url).database or ""
    # CPU seconds of the nodes (until one is killed: its share is read just before), the
    # PostgreSQL backends serving the database, and this driver: per request, the costs
    # that stay put when other jobs share the machine.
    node_cpu = [cpu_seconds(session=n.pid) for n in nodes]
    db_cpu, driver_cpu = cpu_seconds(command="postgres", database=database), time.process_time()
    try:
        run = Run(Balancer([f"http://127.0.0.1:{p}" for p in ports]), time.perf_counter())
        jar = [aiohttp.CookieJar(unsafe=True) for _ in logins]  # unsafe: cookies for an IP host
        timeout = aiohttp.ClientTimeout(total=30)
        students = [
            Student(
                i + 1,
                login,
                aiohttp.ClientSession(
                    cookie_jar=jar[i],
                    timeout=timeout,
                    headers={"X-Forwarded-For": forwarded_for(i + 1)},
                    # An idle kept-alive connection is dropped by the client before gunicorn's
                    # keep-alive closes it: else a request sent on a connection the server is
                    # closing fails (a race a browser or a proxy retries, this driver not).
                    connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE - 2),
                ),
            )
            for i, login in enumerate(logins)
        ]

        async def kill() -> None:
            nonlocal killed_at
            await asyncio.sleep(args.kill_at)
            killed_at = time.perf_counter() - run.started
            log(f"killing node {len(nodes)} (SIGKILL to its process group) at {killed_at:.0f} s")
            node_cpu[-1] = cpu_seconds(session=nodes[-1].pid) - node_cpu[-1]
            stop_gunicorn(nodes[-1], hard=True)

        killer = asyncio.create_task(kill()) if 0 < args.kill_at < args.duration and len(nodes) > 1 else None
        log(f"{args.users} users on {len(nodes)} nodes for {args.duration} s")
        await drive(run, students, args.users, time.monotonic() + args.duration, args.relogin_every)
        elapsed = time.perf_counter() - run.started
        if killer is not None:
            await killer
        live = len(nodes) - (1 if killed_at is not None else 0)
        for i in range(live):
            node_cpu[i] = cpu_seconds(session=nodes[i].pid) - node_cpu[i]
        db_cpu = cpu_seconds(command="postgres", database=database) - db_cpu
        driver_cpu = time.process_time() - driver_cpu
        for s in students:
            await s.http.close()
    finally:
        for node in nodes:
            stop_gunicorn(node)
    windows = {"whole run": summary(run.samples, elapsed)}
    if killed_at is not None:
        windows["before the kill"] = summary([s for s in run.samples if s.at < killed_at], killed_at)
        windows["after the kill"] = summary([s for s in run.samples if s.at >= killed_at], elapsed - killed_at)
        windows["last 10 s (one node)"] = summary([s for s in run.samples if s.at >= elapsed - 10], 10)
    return {
        "bare": bare_rate,
        "windows": windows,
        "errors": dict(run.errors),
        "error_times": run.error_times,
        "mix": dict(run.kinds),
        "rerouted": run.balancer.rerouted,
        "killed_at": killed_at,
        "elapsed": elapsed,
        "cpu_ms_per_request": {
            "nodes": sum(node_cpu) * 1000 / max(len(run.samples), 1),
            "postgresql": db_cpu * 1000 / max(len(run.samples), 1),
            "driver": driver_cpu * 1000 / max(len(run.samples), 1),
        },
    }


def markdown(args: argparse.Namespace, command: str, result: dict[str, Any]) -> str:
    bare = result["bare"]["rate"]
    lines = [
        f"`{command}`: {args.nodes} nodes × gunicorn {args.workers} workers × {args.threads} threads (gthread), "
        f"PostgreSQL + Redis, {args.users} users, {args.duration} s"
        + (f", node {args.nodes} killed at {result['killed_at']:.0f} s" if result["killed_at"] else "")
        + f"; load average at the end {'/'.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "",
        f"Bare Flask app, same driver and users, {args.bare_seconds} s: **{bare:,.0f}** requests/s "
        f"(p95 {result['bare']['p95_ms']:.0f} ms).",
        "",
        "| window | requests | requests/s | share of bare | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, w in result["windows"].items():
        lines.append(
            f"| {name} | {w['requests']:,} | {w['rate']:,.0f} | {w['rate'] / bare:.0%} | {w['p50_ms']:.0f} "
            f"| {w['p95_ms']:.0f} | {w['p99_ms']:.0f} | {w['errors']} |"
        )
    mix = ", ".join(f"{k} {v:,}" for k, v in sorted(result["mix"].items(), key=lambda kv: -kv[1]))
    errors = ", ".join(f"{k} ×{v}" for k, v in result["errors"].items()) or "none"
    if result["error_times"]:
        errors += " (started at " + ", ".join(f"{at:.1f} s" for at, _ in result["error_times"][:12]) + ")"
    cpu = result["cpu_ms_per_request"]
    lines += [
        "",
        f"CPU per request (whole run): nodes {cpu['nodes']:.2f} ms, PostgreSQL {cpu['postgresql']:.2f} ms, "
        f"this driver {cpu['driver']:.2f} ms.",
        "",
        f"Mix: {mix}. Errors: {errors}. Requests re-routed after a refused connection: {result['rerouted']}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--duration", type=int, default=600, help="seconds of mixed load")
    parser.add_argument("--kill-at", type=float, default=None, help="kill the last node after this many seconds")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--students", type=int, default=128, help="seeded students (at most 998)")
    parser.add_argument("--relogin-every", type=int, default=20, help="a student logs in again every N journeys")
    parser.add_argument("--bare-seconds", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    if args.kill_at is None:
        args.kill_at = args.duration * 2 / 3
    OUT.mkdir(parents=True, exist_ok=True)
    logins = seed(args.database_url, args.students)
    result = asyncio.run(main_async(args, logins))
    command = "python -m bench.load " + " ".join(sys.argv[1:] if argv is None else argv)
    (OUT / "load-results.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(markdown(args, command.strip(), result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
