"""The waiting room's page against a bare Flask app, on the same gunicorn, in one command.

.venv/bin/python -m bench.waitroom [--seconds 8] [--rounds 3] [--connections 32] [--workers 2]
                                   [--worker-class sync] [--redis redis://127.0.0.1:6379/8]

Three apps, each served in turn by gunicorn with the same options on a free loopback port:

- ``bare``: a Flask app with one route answering a few hundred bytes of HTML (the floor of
  HTTP + gunicorn + Flask on this machine);
- ``waitroom``: ``gzsb.app:create_app()`` with the waiting room on and a tiny admission rate,
  so every request is a new visitor who gets the waiting page (a new ticket: one Lua script on
  Redis, the page, two cookies);
- ``home``: the same app with the room off, its real home page (考生首页, which reads the live
  flow from the database), for scale.

The load is a raw-socket asyncio client in this process (``--connections`` requests in flight,
one connection per request as sync workers close them), run for ``--seconds`` per app, the
apps interleaved over ``--rounds`` so that other load on the machine hits all of them alike;
the median round is reported. Markdown goes to stdout and ``bench/out/waitroom.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis
from flask import Flask

from bench.common import OUT, percentile
from bench.serve import free_port, gunicorn_command, start_gunicorn, stop_gunicorn
from gzsb.app import create_app
from gzsb.config import ROOT, Config
from gzsb.extensions import db
from gzsb.store import publish
from gzsb.workflow.loader import load_flow_file

PREFIX = "bench:wr:"
WAITING = "正在排队".encode()


def log(message: str) -> None:
    print(f"[bench.waitroom {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bare_app() -> Flask:
    """The baseline: Flask and nothing else."""
    app = Flask("bare")

    @app.get("/")
    def index() -> str:
        return "<!doctype html><html lang=zh-CN><title>bare</title><p>" + "你好" * 100 + "</p></html>"

    return app


def start(target: str, port: int, args: argparse.Namespace, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = gunicorn_command(target, port, args.workers, worker_class=args.worker_class)
    return start_gunicorn(command, port, env, OUT / "waitroom-gunicorn.log", wait=60)


async def _one(port: int) -> tuple[bytes, float]:
    began = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\nConnection: close\r\n\r\n")
    body = await reader.read()
    writer.close()
    return body, time.perf_counter() - began


async def _load(port: int, seconds: float, connections: int, expect: bytes | None) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            try:
                body, took = await _one(port)
            except OSError:
                errors += 1
                continue
            ok = body.startswith(b"HTTP/1.1 200") and (expect is None or expect in body)
            latencies.append(took) if ok else None
            errors += 0 if ok else 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else 0.0,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else 0.0,
        "errors": float(errors),
    }


def prepare(database: Path) -> None:
    """The schema and the published flow (the home page reads it); no accounts are needed."""
    config = type("BenchConfig", (Config,), {"ENV": "development", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}"})
    app = create_app(config)
    with app.app_context():
        db.create_all()
        publish(db.session, load_flow_file(ROOT / "flows" / "enrollment.yaml"))
        db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--redis", default=os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/8")
    parser.add_argument("--prepare", help=argparse.SUPPRESS)  # the child that builds the database
    args = parser.parse_args()
    if args.prepare:
        prepare(Path(args.prepare))
        return
    OUT.mkdir(exist_ok=True)

    database = OUT / "waitroom.sqlite3"
    database.unlink(missing_ok=True)
    app_env = {
        "GZSB_ENV": "development",
        "DATABASE_URL": f"sqlite:///{database}",
        "WAITROOM_REDIS_URL": args.redis,
        "WAITROOM_PREFIX": PREFIX,
    }
    # In a child: the app and its worker module read GZSB_ENV when they are imported.
    subprocess.run(
        [sys.executable, "-m", "bench.waitroom", "--prepare", str(database)],
        cwd=ROOT,
        env={**os.environ, **app_env},
        check=True,
    )
    client = redis.Redis.from_url(args.redis)
    targets = {
        "bare Flask (baseline)": ("bench.waitroom:bare_app()", {"WAITROOM_ENABLED": "0"}, None),
        "waiting room page (new visitor)": ("gzsb.app:create_app()", {"WAITROOM_ENABLED": "1"}, WAITING),
        "real home page (room off)": ("gzsb.app:create_app()", {"WAITROOM_ENABLED": "0"}, "考生".encode()),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    for round_ in range(1, args.rounds + 1):
        for name, (target, env, expect) in targets.items():
            client.delete(*(client.keys(PREFIX + "*") or [PREFIX + "none"]))
            # Switched on with one admission per ~3 hours: every request of the run waits.
            room = {"WAITROOM_RATE": "0.0001", "WAITROOM_SETTINGS_TTL": "3600"}
            port = free_port()
            process = start(target, port, args, {**app_env, **room, **env})
            try:
                asyncio.run(_load(port, 1.0, args.connections, expect))  # warm the workers
                result = asyncio.run(_load(port, args.seconds, args.connections, expect))
            finally:
                stop_gunicorn(process)
            runs[name].append(result)
            log(
                f"round {round_} {name}: {result['rate']:.0f}/s, "
                f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']:.0f}"
            )
    client.delete(*(client.keys(PREFIX + "*") or [PREFIX + "none"]))
    report(runs, args)


def report(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    baseline = statistics.median(r["rate"] for r in next(iter(runs.values())))
    lines = [
        f"gunicorn {args.workers} × {args.worker_class}, {args.connections} requests in flight, "
        f"{args.seconds:.0f} s per app × {args.rounds} rounds (interleaved), medians; one connection per request.",
        "",
        "| app | req/s | vs bare | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for name, results in runs.items():
        middle = sorted(results, key=lambda r: r["rate"])[len(results) // 2]
        lines.append(
            f"| {name} | {middle['rate']:.0f} | {middle['rate'] / baseline:.0%} | {middle['p50_ms']:.1f} | "
            f"{middle['p99_ms']:.1f} | {sum(r['errors'] for r in results):.0f} |"
        )
    text = "\n".join(lines)
    print(text)
    (OUT / "waitroom.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
