"""``Engine.fire()`` latency on a SQLite file (WAL, as the app configures it) or on
PostgreSQL (``--fire-db URL``), commit included, against a bare one-row INSERT + COMMIT on
the same database in the same run."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import text

from bench.common import OUT, PATH, SYSTEM, Clock, add_applicants, make_app, payload_for, remove_db
from gzsb.bootstrap import engine
from gzsb.extensions import db

FIRE_DB = OUT / "fire.sqlite3"


@dataclass
class FireRun:
    """Seconds per call: fire() by event kind, and the two baselines."""

    fires: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    raw_insert: list[float] = field(default_factory=list)
    session_insert: list[float] = field(default_factory=list)
    journal_mode: str = ""

    @property
    def all_fires(self) -> list[float]:
        return [s for samples in self.fires.values() for s in samples]


def run_once(applicants: int, events: int, url: str = "") -> FireRun:
    """``applicants`` fresh applications, each driven through the first ``events`` events of
    the path, one event for everybody before the next (as concurrent students would).

    ``url``: a PostgreSQL database to use instead of the SQLite file (its tables are
    dropped and created again)."""
    OUT.mkdir(parents=True, exist_ok=True)
    if not url:
        remove_db(FIRE_DB)
    app = make_app(url or FIRE_DB, Clock())
    result = FireRun()
    with app.app_context():
        who_all = add_applicants(applicants)
        eng = engine()
        # Bare baseline 1: one-row INSERT + COMMIT on a DB-API connection of the same engine
        # (pragmas set by the app's listener), one after every fire(): a shared machine's load
        # drifts, and interleaving makes both sides of the ratio see the same drift.
        sqlite = db.engine.dialect.name == "sqlite"
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if sqlite:
                result.journal_mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
                cursor.execute("CREATE TABLE IF NOT EXISTS bench_ping (id INTEGER PRIMARY KEY, at TEXT, note TEXT)")
                insert = "INSERT INTO bench_ping (at, note) VALUES (?, ?)"
            else:
                result.journal_mode = "postgresql"
                cursor.execute("DROP TABLE IF EXISTS bench_ping")
                cursor.execute("CREATE TABLE bench_ping (id SERIAL PRIMARY KEY, at TEXT, note TEXT)")
                insert = "INSERT INTO bench_ping (at, note) VALUES (%s, %s)"
            raw.commit()
            for step in range(events):
                event, by_student, spec = PATH[step]
                samples = result.fires[event]
                for n, who in enumerate(who_all):
                    actor = who.actor if by_student else SYSTEM
                    payload = payload_for(who, spec)
                    started = time.perf_counter()
                    eng.fire(who.application_id, event, actor, payload)
                    samples.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    cursor.execute(insert, (f"{step}-{n}", "raw"))
                    raw.commit()
                    result.raw_insert.append(time.perf_counter() - started)
            cursor.close()
        finally:
            raw.close()
        count = applicants * events
        # Baseline 2: the same row through the app's SQLAlchemy session.
        statement = text("INSERT INTO bench_ping (at, note) VALUES (:at, :note)")
        for n in range(count):
            started = time.perf_counter()
            db.session.execute(statement, {"at": f"{n}", "note": "session"})
            db.session.commit()
            result.session_insert.append(time.perf_counter() - started)
        db.session.remove()
        db.engine.dispose()
    return result
