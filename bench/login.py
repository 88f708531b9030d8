"""Log-ins per second: Argon2 with the library defaults (the baseline) against the OWASP
parameters the app now uses, measured in the same run on the same machine.

    .venv/bin/python -m bench.login            # ~1 minute on 2 shared cores
    .venv/bin/python -m bench.login --reps 10

Three measurements, each the median of ``--reps`` sequential runs:

1. ``verify`` alone with the library defaults (64 MiB, t=3, p=4): the baseline;
2. ``verify`` alone with the app's hasher (19 MiB, t=2, p=1);
3. a whole ``POST /login`` (CSRF, lookup by blind index, atomic try counter, verify,
   session) through the Flask test client on a SQLite file, with the app's hash, and once
   more with a baseline hash (the first log-in after the upgrade: verify + rehash).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from argon2 import PasswordHasher

from bench.common import IN_WINDOW, make_app
from gzsb.accounts.service import ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, ARGON2_TIME_COST, hash_password
from gzsb.bootstrap import vault
from gzsb.cli.demo import DEMO_PASSWORD, add_demo_student, demo_student
from gzsb.extensions import db
from gzsb.models import Account

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def median_seconds(run: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    baseline_hasher = PasswordHasher()
    baseline_hash = baseline_hasher.hash(DEMO_PASSWORD)
    ours = hash_password(DEMO_PASSWORD)
    rows: list[tuple[str, float]] = []
    print("verify, library defaults …", file=sys.stderr)
    base = median_seconds(lambda: baseline_hasher.verify(baseline_hash, DEMO_PASSWORD), args.reps)
    rows.append(
        (
            f"verify, library defaults (m={baseline_hasher.memory_cost} KiB, t={baseline_hasher.time_cost}, "
            f"p={baseline_hasher.parallelism}) — baseline",
            base,
        )
    )
    print("verify, OWASP …", file=sys.stderr)
    rows.append(
        (
            f"verify, app (m={ARGON2_MEMORY_KIB} KiB, t={ARGON2_TIME_COST}, p={ARGON2_PARALLELISM})",
            median_seconds(lambda: PasswordHasher().verify(ours, DEMO_PASSWORD), args.reps),
        )
    )

    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp) / "login.sqlite3", lambda: IN_WINDOW)
        with app.app_context():
            account = add_demo_student(db.session, vault(), demo_student(1), password_hash=ours)
            db.session.commit()
            number, account_id = demo_student(1).id_number, account.id

            def log_in(reset_to: str | None) -> Callable[[], object]:
                def run() -> None:
                    if reset_to is not None:
                        db.session.get(Account, account_id).password_hash = reset_to
                        db.session.commit()
                    client = app.test_client()
                    token = TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
                    answer = client.post(
                        "/login", data={"login": number, "password": DEMO_PASSWORD, "csrf_token": token}
                    )
                    assert answer.status_code == 302, answer.status_code

                return run

            print("POST /login, app hash …", file=sys.stderr)
            rows.append(("POST /login, app hash", median_seconds(log_in(None), args.reps)))
            print("POST /login, baseline hash (+ rehash) …", file=sys.stderr)
            rows.append(
                (
                    "POST /login, baseline hash: first log-in after the upgrade (verify + rehash)",
                    median_seconds(log_in(baseline_hash), args.reps),
                )
            )
            db.session.remove()

    print(f"| measurement (median of {args.reps}) | ms | log-ins/s | speed vs baseline |")
    print("|---|---:|---:|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds * 1000:.1f} | {1 / seconds:.1f} | {base / seconds:.1f}× |")


if __name__ == "__main__":
    main()
