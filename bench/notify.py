"""Payment notify handling under concurrent senders: gunicorn + PostgreSQL.

.venv/bin/python -m bench.notify [--orders 200] [--repeats 3] [--senders 50] [--workers 2] [--threads 4]

Set-up (not measured): a PostgreSQL database of its own (created if missing, emptied),
the schema, the published flow, ``--orders`` applicants driven through the real engine to
``payment_pending`` (each has an open order). Then gunicorn serves ``gzsb.app:create_app()``
on a free loopback port, and ``--senders`` threads post signed sandbox notifies to
``/payment/notify/sandbox`` as fast as gunicorn answers, in three phases with a fixed
number of requests each:

0. ``pay, 1 sender``: ``--solo`` more orders paid one request at a time: the service time
   of a paying notify with nobody queueing in front of it;
1. ``pay``: the first notify of every order (verify, match, ledger row, the
   ``payment_succeeded`` transition with history + outbox, notification row);
2. ``repeat``: ``--repeats − 1`` more copies of every notify, shuffled, several copies of
   one notify in flight at once (verify, match, ledger lookup → duplicate);
3. ``bad``: the same number of notifies with a broken signature (refused before the
   database: the floor of HTTP + gunicorn + Flask on this machine).

Each request is timed on the sender around ``requests.post`` (keep-alive session per
sender), so a latency includes waiting in gunicorn's queue behind the other senders.
Afterwards the database must show exactly one paid transition per order, or the run fails.
Gunicorn is stopped at the end; Markdown goes to stdout and ``bench/out/notify.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import requests
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bench.common import IN_WINDOW, OUT, PATH, Clock, add_applicants, fire_step, percentile
from bench.serve import free_port, gunicorn_command, start_gunicorn, stop_gunicorn
from gzsb.adapters.payments import signed, time_text, yuan_text
from gzsb.app import create_app
from gzsb.bootstrap import engine
from gzsb.cli.demo import CATALOG_CSV
from gzsb.config import ROOT, Config
from gzsb.enrollment.catalog import import_catalog
from gzsb.extensions import db
from gzsb.models import Application, ConfirmationPoint, HistoryEvent, Payment, PaymentNotification, PaymentOrder
from gzsb.store import FLOWS, publish
from gzsb.workflow.loader import load_flow_file

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gzsb_bench_notify"
FLOW_FILE = ROOT / "flows" / "enrollment.yaml"


def log(message: str) -> None:
    print(f"[bench.notify {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ensure_database(url: str) -> None:
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}).first()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def seed(url: str, orders: int) -> list[dict[str, str]]:
    """Applicants at payment_pending; returns each order's signed paid notify."""
    config = type("BenchNotifyConfig", (Config,), {"SQLALCHEMY_DATABASE_URI": url})
    app = create_app(config, clock=Clock(IN_WINDOW))
    with app.app_context():
        db.drop_all()
        db.create_all()
        publish(db.session, load_flow_file(FLOW_FILE))
        db.session.add(ConfirmationPoint(code="NK01", name="南开区招生考试中心"))
        db.session.commit()
        import_catalog(db.session, CATALOG_CSV)
        eng = engine()
        stop = next(i for i, (event, _, _) in enumerate(PATH) if event == "create_order")
        for who in add_applicants(orders):
            for step in range(stop + 1):
                _consent_if_asked(eng, who, PATH[step][0])
                fire_step(eng, who, step)
        notifies = []
        for n, order in enumerate(db.session.scalars(select(PaymentOrder).order_by(PaymentOrder.id))):
            params = {
                "notify_id": f"bench-{n}",
                "merchant_id": config.PAYMENT_MERCHANT_ID,
                "out_trade_no": order.number,
                "trade_no": f"SBXBENCH{n:08d}",
                "total_amount": yuan_text(order.amount_fen),
                "currency": order.currency,
                "channel": "alipay",
                "trade_status": "TRADE_SUCCESS",
                "gmt_payment": time_text(order.created_at),
            }
            notifies.append(signed(params, config.PAYMENT_SIGN_KEY))
        db.session.remove()
        db.engine.dispose()
    return notifies


def _consent_if_asked(eng: Any, who: Any, event: str) -> None:
    """Flows that ask for face-data consent before the upload get it (the bench path predates it)."""
    if event != "upload_identity":
        return
    record = db.session.get(Application, who.application_id)
    if "give_face_consent" in FLOWS.by_version(db.session, record.flow_version_id).events_from(record.state):
        eng.fire(who.application_id, "give_face_consent", who.actor, {"agree": True})


def blast(url: str, bodies: list[dict[str, str]], senders: int) -> tuple[list[float], Counter[str], float]:
    """Every body posted once by ``senders`` threads; returns latencies (ms), replies, wall time."""
    work: queue.Queue[dict[str, str]] = queue.Queue()
    for body in bodies:
        work.put(body)
    latencies: list[float] = []
    replies: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(senders + 1)

    def sender() -> None:
        session = requests.Session()
        mine: list[float] = []
        answers: Counter[str] = Counter()
        barrier.wait()
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            started = time.perf_counter()
            try:
                response = session.post(url, data=body, timeout=60)
                answers[f"{response.status_code} {response.text.strip()[:20]}"] += 1
            except requests.RequestException as exc:
                answers[type(exc).__name__] += 1
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)
            replies.update(answers)

    threads = [threading.Thread(target=sender, name=f"sender-{i}") for i in range(senders)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, replies, time.perf_counter() - started


def check(url: str, orders: int, repeats: int, once: int) -> dict[str, int]:
    """Exactly one paid transition per order, one payment row each, every notify recorded."""
    engine_ = create_engine(url)
    with engine_.connect() as conn:
        found = {
            "payment_succeeded events": conn.scalar(
                select(func.count()).where(HistoryEvent.event == "payment_succeeded")
            ),
            "paid payments": conn.scalar(select(func.count()).where(Payment.status == "paid")),
            "payments": conn.scalar(select(func.count()).select_from(Payment)),
            "paid orders": conn.scalar(select(func.count()).where(PaymentOrder.status == "paid")),
            "applications still unpaid": conn.scalar(
                select(func.count()).where(Application.state == "payment_pending")
            ),
            "notifications": conn.scalar(select(func.count()).select_from(PaymentNotification)),
        }
    engine_.dispose()
    expected = {
        "payment_succeeded events": orders,
        "paid payments": orders,
        "payments": orders,
        "paid orders": orders,
        "applications still unpaid": 0,
        "notifications": (orders - once) * repeats + once,  # warm-up and solo orders: one notify each
    }
    if found != expected:
        raise SystemExit(f"database check failed: found {found}, expected {expected}")
    return found


def row(name: str, latencies: list[float], wall: float, replies: Counter[str]) -> dict[str, Any]:
    return {
        "phase": name,
        "requests": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
        "per_s": round(len(latencies) / wall, 1),
        "replies": dict(replies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="notifies per order (the first pays)")
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=24, help="extra orders paid before measuring")
    parser.add_argument("--solo", type=int, default=50, help="extra orders paid by one sender (no queueing)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)

    ensure_database(args.database_url)
    log(f"seeding {args.orders} orders through the engine on {make_url(args.database_url).database}")
    t0 = time.perf_counter()
    notifies = seed(args.database_url, args.orders + args.warmup + args.solo)
    warmup, solo, notifies = (
        notifies[: args.warmup],
        notifies[args.warmup : args.warmup + args.solo],
        notifies[args.warmup + args.solo :],
    )
    log(f"seeded in {time.perf_counter() - t0:.1f} s")

    # A gateway's retry is the same signed message again.
    shuffled = [dict(n) for _ in range(1, args.repeats) for n in notifies]
    random.Random(5).shuffle(shuffled)
    bad = [dict(n, sign="0" * 64) for n in notifies]

    port = free_port()
    command = gunicorn_command("gzsb.app:create_app()", port, args.workers, threads=args.threads)
    log(" ".join(command[1:]))
    process = start_gunicorn(command, port, {"DATABASE_URL": args.database_url}, OUT / "notify-gunicorn.log", wait=60)
    url = f"http://127.0.0.1:{port}/payment/notify/sandbox"
    rows = []
    load_before = os.getloadavg()
    try:
        # Each worker parses the flow and opens its connections on its first requests.
        blast(url, warmup, args.senders)
        log(f"phase pay, 1 sender: {len(solo)} requests")
        latencies, replies, wall = blast(url, solo, 1)
        rows.append(row("pay, 1 sender", latencies, wall, replies))
        for name, bodies in (("pay", notifies), ("repeat", shuffled), ("bad", bad)):
            log(f"phase {name}: {len(bodies)} requests, {args.senders} senders")
            latencies, replies, wall = blast(url, bodies, args.senders)
            rows.append(row(f"{name}, {args.senders} senders", latencies, wall, replies))
    finally:
        stop_gunicorn(process)
    load_after = os.getloadavg()
    expected_replies = [
        {"200 success": len(solo)},
        {"200 success": args.orders},
        {"200 success": len(shuffled)},
        {"400 fail": len(bad)},
    ]
    if [r["replies"] for r in rows] != expected_replies:
        raise SystemExit(f"unexpected replies: {[r['replies'] for r in rows]}")
    found = check(args.database_url, args.orders + args.warmup + args.solo, args.repeats, args.warmup + args.solo)

    lines = [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {args.orders} orders × {args.repeats} notifies, "
        f"{args.senders} concurrent senders, gunicorn {args.workers} workers × {args.threads} threads (gthread), "
        f"PostgreSQL; {args.warmup} more orders paid first as a warm-up (not measured), {args.solo} more paid "
        f"by a single sender (service time without queueing). "
        f"Load average (1/5/15 min) before: {'/'.join(f'{x:.2f}' for x in load_before)}, "
        f"after: {'/'.join(f'{x:.2f}' for x in load_after)} (2 CPUs, shared).",
        "",
        "| phase | requests | p50 ms | p95 ms | p99 ms | max ms | requests/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['phase']} | {r['requests']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} "
            f"| {r['per_s']} |"
            for r in rows
        ),
        "",
        f"Database afterwards: {found}.",
    ]
    report = "\n".join(lines)
    print(report)
    (OUT / "notify.md").write_text(report + "\n", encoding="utf-8")
    (OUT / "notify.json").write_text(
        json.dumps({"args": vars(args), "rows": rows, "db": found, "load": [load_before, load_after]}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
