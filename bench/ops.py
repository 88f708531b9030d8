"""What the operations layer costs (issue 17), as ratios in one run.

1. /healthz and /readyz through the whole app (request id, access log line, latency
   histogram, limiter, security headers) against a bare Flask app answering the same JSON.
2. One failed log-in's rate-limit work (check + count of the account and IP budgets) with
   the counters in Redis against the same in process memory (the embedded default).

    .venv/bin/python -m bench.ops [--redis redis://127.0.0.1:6379/6] [--n 3000]

In-process (Flask test client, SQLite file): it measures our per-request code, not a server.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from flask import Flask, jsonify

from gzsb.accounts import ratelimit
from gzsb.app import create_app
from gzsb.config import TestConfig
from gzsb.extensions import db


def rate(call: Callable[[], object], n: int) -> float:
    """Calls per second, median of three passes."""
    passes = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            call()
        passes.append(n / (time.perf_counter() - started))
    return statistics.median(passes)


def bare_app() -> Flask:
    bare = Flask("bare")

    @bare.get("/healthz")
    def healthz() -> object:
        return jsonify({"status": "ok"})

    return bare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/6")
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    logging.getLogger("gzsb").setLevel(logging.WARNING)  # measure the work, not the terminal

    folder = Path(tempfile.mkdtemp())
    base = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite3'}", "READY_TICK_MAX_AGE_SECONDS": 0}
    app = create_app(type("Bench", (TestConfig,), {**base, "LOG_FORMAT": "json"}))
    with app.app_context():
        db.create_all()
    logging.getLogger("gzsb").setLevel(logging.INFO)  # the access line is part of the cost
    logging.getLogger("gzsb").handlers[0].stream = open("/dev/null", "w")  # noqa: SIM115
    ours, bare = app.test_client(), bare_app().test_client()
    results = {
        "bare /healthz": rate(lambda: bare.get("/healthz"), args.n),
        "gzsb /healthz": rate(lambda: ours.get("/healthz"), args.n),
        "gzsb /readyz": rate(lambda: ours.get("/readyz"), args.n),
    }

    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    for name, uri in (("memory", "memory://"), ("redis", args.redis)):
        limited = create_app(
            type("L", (TestConfig,), {**base, "RATELIMIT_STORAGE_URI": uri, "RATELIMIT_KEY_PREFIX": prefix})
        )
        counter = iter(range(10**9))

        def one_failure(counter=counter) -> None:  # noqa: B008 - this pass's own counter
            who = f"1390{next(counter) % 5000:07d}"  # many accounts, like a busy opening hour
            ratelimit.blocked("login", who)
            ratelimit.failure("login", who)

        with limited.test_request_context("/login", method="POST", environ_base={"REMOTE_ADDR": "10.0.0.1"}):
            limited.config["FAILURES_PER_IP"] = "100000000/15minutes"
            results[f"failure budget ({name})"] = rate(one_failure, args.n)

    print(f"{'what':<26} {'per second':>12} {'µs each':>10}")
    for what, value in results.items():
        print(f"{what:<26} {value:>12,.0f} {1e6 / value:>10.0f}")
    print(f"gzsb /healthz / bare: {results['gzsb /healthz'] / results['bare /healthz']:.0%}")
    print(f"gzsb /readyz / bare: {results['gzsb /readyz'] / results['bare /healthz']:.0%}")
    print(
        f"failure budget redis / memory: {results['failure budget (redis)'] / results['failure budget (memory)']:.0%}"
    )


if __name__ == "__main__":
    main()
