"""The audit data set: N applications × 16 events in a SQLite file, cached under bench/out/.

A few applications are driven through the real engine (``TEMPLATES``); every other
application is a copy of one of them under a new uid, with its hash chain recomputed
from its own genesis hash with ``event_hash``, bulk-inserted with ``executemany``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import EXPECTED_END, FLOW_FILE, OUT, PATH, Clock, add_applicants, fire_step, make_app, remove_db
from gzsb.bootstrap import engine
from gzsb.extensions import db
from gzsb.workflow.history import event_hash, genesis_hash
from gzsb.workflow.loader import load_flow_file

TEMPLATES = 8  # applications driven through Engine.fire; the rest are copies
BATCH_APPS = 5000  # applications per executemany batch
GENERATOR = 3  # bump when the data set's shape changes: cached files are then rebuilt

APP_COLUMNS = (
    "id", "uid", "account_id", "flow_version_id", "state", "version", "seq", "head", "data",
    "confirmation_point_id", "created_at", "updated_at",
)  # fmt: skip
EVENT_COLUMNS = (
    "application_id", "seq", "event", "from_state", "to_state", "actor", "role", "guards", "payload",
    "flow_sha256", "at", "prev_hash", "hash", "changes",
)  # fmt: skip


# What a copy keeps of each template event (in this order).
KEPT = ("seq", "event", "from_state", "to_state", "actor", "role", "guards", "payload", "at", "changes")


@dataclass(frozen=True)
class Template:
    app: dict[str, Any]
    events: list[dict[str, Any]]
    rows: list[tuple[Any, ...]]  # the KEPT fields of each event

    @classmethod
    def of(cls, app: dict[str, Any], events: list[dict[str, Any]]) -> Template:
        return cls(app, events, [tuple(e[k] for k in KEPT) for e in events])


def db_path(apps: int) -> Path:
    sha = load_flow_file(FLOW_FILE).sha256
    return OUT / f"audit-{apps}-{sha[:12]}-g{GENERATOR}.sqlite3"


def copy_uid(index: int) -> str:
    return hashlib.md5(f"bench-application-{index}".encode(), usedforsecurity=False).hexdigest()


def order_key(uid: str) -> str:
    """The part of an order number derived from the uid (see gzsb.payments.steps)."""
    return uid[:10].upper()


def ensure(apps: int, log: Any = print) -> Path:
    """The cached data set for ``apps`` applications, generated if missing."""
    path = db_path(apps)
    if path.exists():
        log(f"data set: reusing {path.relative_to(OUT.parent.parent)}")
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    remove_db(tmp)
    started = time.perf_counter()
    templates = _drive_templates(tmp, min(TEMPLATES, apps))
    driven = time.perf_counter()
    _bulk_copy(tmp, templates, apps)
    remove_db(path)
    tmp.rename(path)
    log(
        f"data set: {apps:,} applications × {len(PATH)} events generated in "
        f"{time.perf_counter() - started:.1f}s (engine {driven - started:.1f}s) → {path.name}"
    )
    return path


def _drive_templates(path: Path, count: int) -> list[Template]:
    app = make_app(path, Clock())
    with app.app_context():
        applicants = add_applicants(count)
        eng = engine()
        for step in range(len(PATH)):
            for who in applicants:
                fired = fire_step(eng, who, step)
                assert fired.event == PATH[step][0]
        db.session.remove()
        db.engine.dispose()
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        templates = []
        for row in conn.execute(f"SELECT {', '.join(APP_COLUMNS)} FROM applications ORDER BY id"):
            events = conn.execute(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM history_events WHERE application_id = ? ORDER BY seq",
                (row["id"],),
            ).fetchall()
            templates.append(Template.of(dict(row), [dict(e) for e in events]))
    conn.close()
    assert len(templates) == count and all(len(t.events) == len(PATH) for t in templates)
    assert all(t.app["state"] == EXPECTED_END for t in templates)
    return templates


def _copies(templates: Sequence[Template], first_id: int, last_id: int) -> Iterator[tuple[tuple, list[tuple]]]:
    """(application row, its event rows) for ids first_id..last_id, chains recomputed."""
    for app_id in range(first_id, last_id + 1):
        template = templates[app_id % len(templates)]
        uid = copy_uid(app_id)
        old_key, new_key = order_key(template.app["uid"]), order_key(uid)
        flow_sha = template.events[0]["flow_sha256"]
        prev = genesis_hash(uid, flow_sha)
        events = []
        for seq, event, source, dest, actor, role, guards, text, at, recorded in template.rows:
            payload, changes = text.replace(old_key, new_key), recorded.replace(old_key, new_key)
            digest = event_hash(
                prev, uid, seq, event, source, dest, actor, role, guards, payload, flow_sha, at, changes
            )
            events.append(
                (app_id, seq, event, source, dest, actor, role, guards, payload, flow_sha, at, prev, digest, changes)
            )
            prev = digest
        a = template.app
        app_row = (
            app_id, uid, a["account_id"], a["flow_version_id"], a["state"], a["version"], a["seq"], prev,
            a["data"].replace(old_key, new_key), a["confirmation_point_id"], a["created_at"], a["updated_at"],
        )  # fmt: skip
        yield app_row, events


def _bulk_copy(path: Path, templates: Sequence[Template], apps: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # The file is renamed into place only when complete, so no journal is needed.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-200000")
        app_sql = f"INSERT INTO applications ({', '.join(APP_COLUMNS)}) VALUES ({', '.join('?' * len(APP_COLUMNS))})"
        event_sql = (
            f"INSERT INTO history_events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
        )
        conn.execute("BEGIN")
        for first in range(len(templates) + 1, apps + 1, BATCH_APPS):
            last = min(first + BATCH_APPS - 1, apps)
            app_rows, event_rows = [], []
            for app_row, events in _copies(templates, first, last):
                app_rows.append(app_row)
                event_rows.extend(events)
            conn.executemany(app_sql, app_rows)
            conn.executemany(event_sql, event_rows)
        conn.execute("COMMIT")
        count = conn.execute("SELECT count(*) FROM history_events").fetchone()[0]
        assert count == apps * len(PATH), count
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
