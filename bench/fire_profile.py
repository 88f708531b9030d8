"""Where a ``fire()`` on PostgreSQL spends: per event kind of the bench path, the round
trips (pool checkouts with their pre-ping, BEGIN, statements, COMMIT), the process CPU and
the wall time of the call, and optionally a cProfile of all calls.

``python -m bench.fire_profile --db postgresql+psycopg://postgres@127.0.0.1:5432/NAME``
(the database is emptied; created when missing). Round trips are counted from SQLAlchemy's
events: psycopg sends BEGIN before the first statement of a transaction; a ping (the pool's
``pool_pre_ping`` or ``gzsb.common.dbpool``) is counted where the dialect's ``do_ping`` is called.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event

from bench.common import PATH, SYSTEM, Clock, add_applicants, ensure_database, make_app, median, payload_for
from gzsb.bootstrap import engine
from gzsb.extensions import db


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fire_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, metavar="URL", help="a PostgreSQL database (emptied)")
    parser.add_argument("--applicants", type=int, default=100)
    parser.add_argument("--events", type=int, default=9, choices=range(1, len(PATH) + 1), metavar="1..16")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print cProfile's top N functions")
    parser.add_argument("--sql", action="store_true", help="print each event kind's statements once")
    args = parser.parse_args(argv)

    ensure_database(args.db)
    app = make_app(args.db, Clock())
    trips: dict[str, Counter[str]] = defaultdict(Counter)
    cpu: dict[str, list[float]] = defaultdict(list)
    wall: dict[str, list[float]] = defaultdict(list)
    shown: dict[str, list[str]] = defaultdict(list)
    current: list[str] = []  # the event kind being fired ([] outside fire())
    profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not waiting

    with app.app_context():
        who_all = add_applicants(args.applicants)
        eng = engine()
        sa_engine = db.engine

        def count(kind: str) -> None:
            if current:
                trips[current[0]][kind] += 1

        @event.listens_for(sa_engine, "before_cursor_execute")
        def _statement(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
            count("statements")
            if current and args.sql and len(shown[current[0]]) < 20 and current[1] == "first":
                shown[current[0]].append(statement.split("\n")[0][:160])

        event.listen(sa_engine.pool, "checkout", lambda *a: count("checkouts"))
        real_ping = sa_engine.dialect.do_ping

        def counted_ping(dbapi_connection: Any) -> bool:
            count("pings")  # pool_pre_ping and gzsb.common.dbpool both call the dialect's do_ping
            return real_ping(dbapi_connection)

        sa_engine.dialect.do_ping = counted_ping  # type: ignore[method-assign]
        event.listen(sa_engine, "begin", lambda conn: count("begin"))
        event.listen(sa_engine, "commit", lambda conn: count("commit"))
        event.listen(sa_engine, "rollback", lambda conn: count("rollback"))

        for step in range(args.events):
            name, by_student, spec = PATH[step]
            for n, who in enumerate(who_all):
                payload = payload_for(who, spec)
                current[:] = [name, "first" if n == 0 else "more"]
                c0, w0 = time.process_time(), time.perf_counter()
                if profiler:
                    profiler.enable()
                eng.fire(who.application_id, name, who.actor if by_student else SYSTEM, payload)
                if profiler:
                    profiler.disable()
                cpu[name].append(time.process_time() - c0)
                wall[name].append(time.perf_counter() - w0)
                current.clear()
        db.session.remove()
        sa_engine.dispose()

    print(f"{args.applicants} applicants; per fire(), medians; round trips from SQLAlchemy events\n")
    print("| event | statements | checkouts | pings | BEGIN | COMMIT | round trips | CPU ms | wall ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    total_cpu: list[float] = []
    total_wall: list[float] = []
    for name in dict.fromkeys(e for e, _, _ in PATH[: args.events]):
        n = len(cpu[name])
        t = trips[name]
        per = {k: t[k] / n for k in ("statements", "checkouts", "pings", "begin", "commit")}
        # A ping is one round trip, psycopg's BEGIN before a transaction's first statement another.
        rt = per["statements"] + per["pings"] + per["begin"] + per["commit"]
        print(
            f"| `{name}` | {per['statements']:.1f} | {per['checkouts']:.1f} | {per['pings']:.1f} | "
            f"{per['begin']:.1f} | {per['commit']:.1f} | {rt:.1f} | {median(cpu[name]) * 1e3:.2f} | "
            f"{median(wall[name]) * 1e3:.2f} |"
        )
        total_cpu += cpu[name]
        total_wall += wall[name]
    print(f"| **all** | | | | | | | {median(total_cpu) * 1e3:.2f} | {median(total_wall) * 1e3:.2f} |")
    if args.sql:
        for name, statements in shown.items():
            print(f"\n{name}:")
            for s in statements:
                print("   ", s)
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.profile)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
