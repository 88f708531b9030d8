"""Benchmark of the fleet impact report (`flask flow impact`) over synthetic applications.

.venv/bin/python -m bench.impact [--n 100000] [--database-url URL] [--keep]

Creates N in-flight applications directly (bulk INSERT, no engine) in a scratch SQLite
file, and also in PostgreSQL when ``--database-url`` is given (its tables are dropped and
created: use a scratch database). Then times, in the same run, a bare SELECT streaming the
same columns (the floor) and the report of the deadline-extension edit at a time after the
old close. Peak RSS is sampled before and after the report (flat memory: it must not grow
with N).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from gzsb.admin import flows
from gzsb.app import create_app
from gzsb.config import ROOT, TestConfig
from gzsb.extensions import db
from gzsb.models import Account, Application, new_uid
from gzsb.store import publish
from gzsb.workflow.loader import load_flow_file

FLOW_FILE = ROOT / "flows" / "enrollment.yaml"
OLD_CLOSE, NEW_CLOSE = "2027-01-12T17:00:00+08:00", "2027-03-31T17:00:00+08:00"
AFTER_OLD_CLOSE = datetime(2027, 2, 1, 2, 0, tzinfo=UTC)
CHUNK = 10_000


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def populate(n: int, seed: int = 11) -> None:
    flow = load_flow_file(FLOW_FILE)
    db.drop_all()
    db.create_all()
    version, _ = publish(db.session, flow, "bench")
    account = Account(role="student", name="压测", id_number_enc=b"x", id_number_index="bench", password_hash="x")
    db.session.add(account)
    db.session.commit()
    states = [name for name, spec in flow.states.items() if not spec.final]
    rng = random.Random(seed)
    for start in range(0, n, CHUNK):
        rows = []
        for _ in range(min(CHUNK, n - start)):
            state = rng.choice(states)
            data = {"xueji": {"status": "confirmed"}, "category": "普通"} if state != "started" else {}
            rows.append(
                {"uid": new_uid(), "account_id": account.id, "flow_version_id": version.id, "state": state,
                 "head": "0" * 64, "data": data}
            )  # fmt: skip
        db.session.execute(insert(Application), rows)
        db.session.commit()
    log(f"created {n} applications")


def bare_select() -> tuple[int, float]:
    start = time.perf_counter()
    query = select(Application.id, Application.uid, Application.state, Application.flow_version_id, Application.data)
    count = sum(1 for _ in db.session.execute(query.execution_options(yield_per=2_000)))
    return count, time.perf_counter() - start


def run_on(url: str, n: int) -> dict[str, object]:
    app = create_app(type("BenchCfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": url}))
    with app.app_context():
        populate(n)
        candidate = flows.validate(FLOW_FILE.read_text(encoding="utf-8").replace(OLD_CLOSE, NEW_CLOSE), "ext.yaml")
        count, floor = bare_select()
        before = rss_mb()
        start = time.perf_counter()
        report = flows.impact(db.session, candidate, now=AFTER_OLD_CLOSE, limit=50,
                              progress=lambda k: log(f"classified {k}"))  # fmt: skip
        seconds = time.perf_counter() - start
        after = rss_mb()
        assert report.total == count == n, (report.total, count, n)
        log(report.to_text())
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
    return {"n": n, "select_s": floor, "impact_s": seconds, "rss_before": before, "rss_after": after,
            "counts": dict(report.counts)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="Also on this (scratch!) PostgreSQL database.")
    args = parser.parse_args()
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        targets.append(("SQLite", f"sqlite:///{Path(tmp) / 'impact.sqlite3'}"))
        if args.database_url:
            targets.append(("PostgreSQL", args.database_url))
        print(
            "| database | applications | bare SELECT (s) | impact report (s) | ratio | apps/s | peak RSS before → after (MB) |"  # noqa: E501
        )
        print("|---|---:|---:|---:|---:|---:|---|")
        for name, url in targets:
            r = run_on(url, args.n)
            ratio = r["impact_s"] / r["select_s"]  # type: ignore[operator]
            print(
                f"| {name} | {r['n']:,} | {r['select_s']:.2f} | {r['impact_s']:.2f} | {ratio:.1f}× | "
                f"{r['n'] / r['impact_s']:,.0f} | {r['rss_before']:.0f} → {r['rss_after']:.0f} |"  # type: ignore[operator]
            )
            print(f"<!-- {name} counts: {r['counts']} -->")


if __name__ == "__main__":
    main()
