"""The 流程页面 (GET /process) on gunicorn + PostgreSQL against the bare Flask app
(``bench/bare.py``) on the same gunicorn with the same flags, in the same command.

.venv/bin/python -m bench.web [--seconds 15] [--connections 32] [--workers 2] [--threads 4]

A PostgreSQL database (emptied), ``--students`` applicants, each logged in once through
the real /login; then wrk (Debian package ``wrk``) drives, in turn, the bare app's page and
the 流程页面 with the students' session cookies (a small Lua script rotates them), each for
``--seconds``. Reported: requests/s, latency percentiles, non-2xx answers, and the ratio of
the 流程页面's rate to the bare app's. wrk is a C load generator: it costs the 2 shared CPUs
far less than a Python driver would, so the servers get most of the machine.

The helpers here (seed, servers, log-in) are shared with ``bench.load``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

import requests
from sqlalchemy.engine import make_url

from bench.common import FLOW_FILE, OUT, add_applicants, ensure_database
from bench.serve import cpu_seconds, free_port, gunicorn_command, start_gunicorn, stop_gunicorn
from gzsb.app import create_app
from gzsb.cli.demo import CATALOG_CSV, demo_student
from gzsb.config import Config
from gzsb.enrollment.catalog import import_catalog
from gzsb.extensions import db
from gzsb.models import ConfirmationPoint
from gzsb.store import publish
from gzsb.workflow.loader import load_flow_file

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gzsb_bench_web"
PASSWORD = "Bench@2026gzsb"  # bench.common.add_applicants sets it on every account
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# The servers' environment: development keys are accepted (GZSB_ENV), plain HTTP cookies,
# and the per-IP SMS limits raised: every simulated student comes from 127.0.0.1.
SERVER_ENV = {
    "GZSB_ENV": "development",
    "SESSION_COOKIE_SECURE": "0",
    "IP_SMS_PER_HOUR": "1000000",
    "OTP_RESEND_SECONDS": "0",
    "OTP_DAILY_LIMIT": "1000000",
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def seed(url: str, students: int) -> list[str]:
    """An emptied database with the flow, a 确认点, the catalogue and ``students`` started
    applications; their log-in names (ID numbers)."""
    ensure_database(url)
    os.environ.setdefault("GZSB_ENV", "development")
    config = type("BenchWebConfig", (Config,), {"SQLALCHEMY_DATABASE_URI": url})
    app = create_app(config)
    with app.app_context():
        db.drop_all()
        db.create_all()
        publish(db.session, load_flow_file(FLOW_FILE))
        db.session.add(ConfirmationPoint(code="NK01", name="南开区招生考试中心"))
        db.session.commit()
        import_catalog(db.session, CATALOG_CSV)
        made = add_applicants(students)
        db.session.remove()
        db.engine.dispose()
    return [demo_student(who.index).id_number for who in made]


def start_server(
    target: str, port: int, workers: int, threads: int, env: dict[str, str], name: str
) -> subprocess.Popen[bytes]:
    command = gunicorn_command(target, port, workers, threads=threads)
    log(f"{name}: " + " ".join(command[1:]))
    return start_gunicorn(command, port, env, OUT / f"{name}-gunicorn.log", name=name)


def log_in(base: str, login: str) -> requests.Session:
    http = requests.Session()
    token = CSRF.search(http.get(f"{base}/login", timeout=30).text)
    if token is None:
        raise SystemExit("the log-in page has no CSRF token")
    answer = http.post(
        f"{base}/login",
        data={"login": login, "password": PASSWORD, "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=60,
    )
    if answer.status_code != 302:
        raise SystemExit(f"log-in of {login[:6]}… failed: HTTP {answer.status_code}")
    return http


def browsed(base: str, login: str) -> requests.Session:
    """A student logged in who has opened the 流程页面 once, holding the cookie a browser would
    hold then. wrk replays cookies without storing answers: the one set at log-in lacks the
    page's CSRF token, so every request would make a new token and re-sign the cookie, work a
    browser's requests after its first page do not cause."""
    http = log_in(base, login)
    http.get(f"{base}/process", timeout=30).raise_for_status()
    return http


# wrk: rotate the students' cookies over the requests; report the numbers as JSON.
WRK_LUA = """
cookies = {%s}
n = 0
request = function()
  n = n + 1
  if #cookies == 0 then return wrk.format("GET", wrk.path) end
  return wrk.format("GET", wrk.path, {["Cookie"] = cookies[(n %% #cookies) + 1]})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {\\"requests\\": %%d, \\"seconds\\": %%f, \\"non2xx\\": %%d, \\"socket\\": %%d, "
    .. "\\"p50\\": %%f, \\"p95\\": %%f, \\"p99\\": %%f}\\n", summary.requests, summary.duration / 1e6, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3))
end
"""


def wrk(
    url: str,
    cookies: list[str],
    seconds: int,
    connections: int,
    name: str,
    server: subprocess.Popen[bytes] | None = None,
    database: str = "",
) -> dict[str, Any]:
    """One wrk run; with ``server``, also the CPU seconds the node and PostgreSQL's backends
    spent per request (``app_cpu_ms``, ``db_cpu_ms``: the backends serving ``database``)."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    script = OUT / f"{name}.lua"
    script.write_text(WRK_LUA % ", ".join(json.dumps(c) for c in cookies))
    command = [binary, "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    log(f"{name}: wrk " + " ".join(command[1:]))
    app_before = cpu_seconds(session=server.pid) if server else 0.0
    db_before = cpu_seconds(command="postgres", database=database) if database else 0.0
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    app_cpu = cpu_seconds(session=server.pid) - app_before if server else 0.0
    db_cpu = (cpu_seconds(command="postgres", database=database) if database else 0.0) - db_before
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    result = json.loads(line.removeprefix("WRKJSON "))
    result["rate"] = result["requests"] / result["seconds"]
    result["app_cpu_ms"] = app_cpu * 1000 / max(result["requests"], 1)
    result["db_cpu_ms"] = db_cpu * 1000 / max(result["requests"], 1)
    return result


def cookie_header(http: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    logins = seed(args.database_url, args.students)
    env = {**SERVER_ENV, "DATABASE_URL": args.database_url}
    gz_port, bare_port = free_port(), free_port()
    gz = start_server("gzsb.app:create_app()", gz_port, args.workers, args.threads, env, "web-gzsb")
    try:
        cookies = [cookie_header(browsed(f"http://127.0.0.1:{gz_port}", login)) for login in logins]
        page = requests.get(f"http://127.0.0.1:{gz_port}/process", headers={"Cookie": cookies[0]}, timeout=30)
        if page.status_code != 200 or "流程" not in page.text:
            raise SystemExit(f"/process answered {page.status_code} without the 流程页面")
        wrk(f"http://127.0.0.1:{gz_port}/process", cookies, 3, args.connections, "web-warmup")
        database = make_url(args.database_url).database or ""
        url = f"http://127.0.0.1:{gz_port}/process"
        process = wrk(url, cookies, args.seconds, args.connections, "web-process", gz, database)
    finally:
        stop_gunicorn(gz)
    bare = start_server("bench.bare:app", bare_port, args.workers, args.threads, {}, "web-bare")
    try:
        wrk(f"http://127.0.0.1:{bare_port}/", [], 3, args.connections, "web-bare-warmup")
        baseline = wrk(f"http://127.0.0.1:{bare_port}/", [], args.seconds, args.connections, "web-bare", bare)
    finally:
        stop_gunicorn(bare)
    command = "python -m bench.web " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        f"`{command.strip()}`: gunicorn {args.workers} workers × {args.threads} threads (gthread), wrk "
        f"{args.connections} connections, {args.seconds} s each, {args.students} logged-in students; "
        f"load average at the end {'/'.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "",
        "| page | requests/s | p50 ms | p95 ms | p99 ms | non-2xx | socket errors | node CPU ms/request "
        "| PostgreSQL CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in (("bare Flask app `/`", baseline), ("流程页面 `/process` (PostgreSQL)", process)):
        lines.append(
            f"| {label} | {r['rate']:,.0f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['non2xx']} "
            f"| {r['socket']} | {r['app_cpu_ms']:.2f} | {r['db_cpu_ms']:.2f} |"
        )
    cpu = lambda r: r["app_cpu_ms"] + r["db_cpu_ms"]  # noqa: E731
    lines += [
        "",
        f"流程页面 / bare: **{process['rate'] / baseline['rate']:.0%}** of the rate (target ≥ 25 %); by CPU per "
        f"request (node + PostgreSQL, steadier on a shared machine): **{cpu(baseline) / cpu(process):.0%}**.",
    ]
    text_out = "\n".join(lines)
    (OUT / "web-results.json").write_text(json.dumps({"process": process, "bare": baseline}, indent=1))
    print(text_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
