"""An attacker with write access to the database, using the project's own functions: every
rewrite is caught and named by `flask audit verify` (application, seq or tree index)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm.attributes import flag_modified

from gzsb.audit.service import FleetCheck, default_redactor
from gzsb.extensions import db
from gzsb.models import HistoryEvent
from gzsb.workflow.engine import Engine
from gzsb.workflow.history import event_hash
from gzsb.workflow.witness import init_witness
from tests.drive import STAFF, application, history, sql, to_approved, uid_of
from tests.support import new_applicant, to_confirming, to_payment


def cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


@pytest.fixture
def fleet(app: Flask, eng: Engine, tmp_path: Path) -> dict[str, Any]:
    """Three applicants (approved, paying, confirming), logged, checkpointed and cosigned."""
    done, paying, bystander = new_applicant(1), new_applicant(2), new_applicant(3)
    to_approved(eng, done)
    to_payment(eng, paying)
    to_confirming(eng, bystander)
    witness_dir = tmp_path / "witness"
    vkey = init_witness(witness_dir, "kaoshiyuan.example/witness")
    assert cli(app, "audit", "checkpoint").exit_code == 0
    result = cli(app, "audit", "witness", "--dir", str(witness_dir))
    assert result.exit_code == 0, result.output
    return {"done": done.application_id, "paying": paying.application_id, "witness": vkey, "dir": witness_dir}


def rechain(app_id: int, from_seq: int) -> None:
    """Recompute every hash from ``from_seq`` on, and the head, with the project's own function."""
    record = application(app_id)
    prev = None
    for event in history(app_id):
        if event.seq < from_seq:
            prev = event.hash
            continue
        event.prev_hash = prev or event.prev_hash
        event.hash = event_hash(
            event.prev_hash, record.uid, event.seq, event.event, event.from_state, event.to_state, event.actor,
            event.role, event.guards, event.payload, event.flow_sha256, event.at, event.changes,
        )  # fmt: skip
        prev = event.hash
    record.head = prev
    db.session.commit()


def verify(app: Flask, *extra: str) -> Any:
    return cli(app, "audit", "verify", *extra)


def test_clean_log_verifies(app: Flask, fleet: dict[str, Any]) -> None:
    result = verify(app, "--require-witness", fleet["witness"])
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output and "0 problem(s)" in result.output


@pytest.mark.parametrize(
    ("event", "column", "old", "new"),
    [
        ("submit_preferences", "payload", '"institution":"10060"', '"institution":"99999"'),
        ("face_matched", "payload", '"distance":0.3', '"distance":0.75'),
        ("payment_succeeded", "actor", "system:test", STAFF.id),
        ("payment_succeeded", "actor", "system:test", 'sys"tem\\test'),  # JSON-escaped in the hashed body
    ],
)
def test_rewrite_and_recompute_is_named(
    app: Flask, fleet: dict[str, Any], event: str, column: str, old: str, new: str
) -> None:
    app_id = fleet["done"]
    target = next(e for e in history(app_id) if e.event == event)
    assert old in getattr(target, column)
    setattr(target, column, getattr(target, column).replace(old, new))
    if column == "payload" and "institution" in old:  # the data binding too, so replay alone is fooled
        target.changes = target.changes.replace(old, new)
        record = application(app_id)
        record.data = json.loads(json.dumps(record.data).replace('"10060"', '"99999"'))
    db.session.commit()
    rechain(app_id, target.seq)
    result = verify(app)
    assert result.exit_code == 1
    assert "0 failed" in result.output  # the chain itself was recomputed: only the log knows
    uid = uid_of(app_id)
    assert f"tree index {target.log_index} (application {uid} seq {target.seq})" in result.output, result.output
    assert "do not give the root signed in checkpoint" in result.output, result.output


def test_dropped_last_events_and_rollback_are_named(app: Flask, fleet: dict[str, Any]) -> None:
    app_id = fleet["done"]
    events = [(e.seq, e.log_index) for e in history(app_id)]
    keep = history(app_id)[-3]
    sql("DELETE FROM history_events WHERE application_id = :a AND seq > :s", a=app_id, s=keep.seq)
    sql("UPDATE applications SET head = :h, state = :st, seq = :s WHERE id = :a", h=keep.hash, st=keep.to_state,
        s=keep.seq, a=app_id)  # fmt: skip
    result = verify(app)
    assert result.exit_code == 1
    uid = uid_of(app_id)
    for seq, index in events[-2:]:
        assert f"tree index {index} (application {uid} seq {seq}): its event no longer exists" in result.output


def test_deleted_application_is_named(app: Flask, fleet: dict[str, Any]) -> None:
    app_id = fleet["paying"]
    uid = uid_of(app_id)
    first_index = history(app_id)[0].log_index
    for table in ("history_events", "outbox", "timers", "uploads", "payment_orders"):
        sql(f"DELETE FROM {table} WHERE application_id = :a", a=app_id)
    sql("DELETE FROM applications WHERE id = :a", a=app_id)
    result = verify(app)
    assert result.exit_code == 1
    assert f"tree index {first_index} (application {uid} seq 1): its event no longer exists" in result.output


@pytest.mark.parametrize(
    ("key", "old", "new"),
    [
        ("preferences", '"10060"', '"99999"'),
        ("basic_info", "李", "王"),
        # Equal in Python, not in JSON: the fast path's comparison must tell them apart.
        ("basic_info", '"graduation_year": 2027', '"graduation_year": 2027.0'),
        ("basic_info", '"graduation_year": 2027', '"graduation_year": true'),
    ],
)
def test_edited_application_data_is_named(app: Flask, fleet: dict[str, Any], key: str, old: str, new: str) -> None:
    app_id = fleet["done"]
    record = application(app_id)
    text = json.dumps(record.data, ensure_ascii=False)
    assert old in text
    record.data = json.loads(text.replace(old, new, 1))
    flag_modified(record, "data")  # 2027.0 == 2027 in Python: without it nothing would be written
    db.session.commit()
    result = verify(app)
    assert result.exit_code == 1
    assert f"application {record.uid}: FAILED at seq" in result.output
    assert f"application data {key!r} differs from what its history recorded" in result.output


def test_rewrite_below_the_cosigned_checkpoint_with_the_log_rebuilt(app: Flask, fleet: dict[str, Any]) -> None:
    app_id = fleet["done"]
    target = next(e for e in history(app_id) if e.event == "face_matched")
    target.payload = target.payload.replace('"distance":0.3', '"distance":0.75')
    db.session.commit()
    rechain(app_id, target.seq)
    # Rebuild the whole log from the rewritten events, and sign it with the log's own key.
    for statement in ("DELETE FROM log_nodes", "DELETE FROM log_leaves", "UPDATE log_state SET size = 0",
                      "UPDATE history_events SET log_index = NULL"):  # fmt: skip
        sql(statement)
    assert cli(app, "audit", "checkpoint").exit_code == 0
    result = verify(app)  # without a witness the rebuilt, re-signed log is self-consistent...
    assert "do not give the root signed in checkpoint 1" in result.output  # ...but for the older checkpoint
    result = verify(app, "--require-witness", fleet["witness"])
    assert result.exit_code == 1
    assert "tree indexes 0.." in result.output and "history below tree index" in result.output
    # The witness, asked to cosign the rewritten log, refuses.
    refused = cli(app, "audit", "witness", "--dir", str(fleet["dir"]))
    assert refused.exit_code == 1
    assert "refused" in refused.output and "rewritten" in refused.output


def test_sequencer_logs_every_event_once(app: Flask, eng: Engine) -> None:
    from gzsb.audit.log import integrate

    who = new_applicant(7)
    to_confirming(eng, who)
    assert integrate(db.session, batch=2) == 1 + 5  # the flow publish, then five events
    eng.fire(who.application_id, "confirm_info", who.actor, {})
    eng.fire(who.application_id, "give_face_consent", who.actor, {"agree": True})
    assert integrate(db.session, batch=1) == 2
    assert integrate(db.session) == 0
    indexes = sorted(e.log_index for e in history(who.application_id))
    assert indexes == list(range(1, 8))
    assert db.session.query(HistoryEvent).filter(HistoryEvent.log_index.is_(None)).count() == 0


def test_a_pool_of_processes_finds_what_one_process_finds(app: Flask, fleet: dict[str, Any]) -> None:
    """`--jobs`: the same verdicts, log problems and counts, whichever process replayed what."""
    done, paying = fleet["done"], fleet["paying"]
    target = next(e for e in history(done) if e.event == "face_matched")
    target.payload = target.payload.replace('"distance":0.3', '"distance":0.75')
    record = application(paying)
    record.data = json.loads(json.dumps(record.data).replace('"10060"', '"99999"'))
    db.session.commit()
    rechain(done, target.seq)
    found = {}
    for jobs in (1, 2):
        check = FleetCheck(db.session, default_redactor(), jobs=jobs, range_ids=1)  # a task per application
        verdicts = [v.describe() for v in check.verdicts()]
        found[jobs] = (verdicts, check.problems, check.applications, check.events, check.unlogged)
    assert found[1] == found[2]
    verdicts, problems = found[2][0], found[2][1]
    assert len(verdicts) == 3 and f"application {uid_of(paying)}: FAILED at seq" in "\n".join(verdicts)
    assert any(f"tree index {target.log_index} (application {uid_of(done)} seq {target.seq})" in p for p in problems)


def test_text_that_is_not_utf8_is_named(app: Flask, fleet: dict[str, Any]) -> None:
    """The last event's payload replaced by bytes that are not UTF-8, its hash and the head
    recomputed over those very bytes: no event text could be hashed that way, so it is edited."""
    app_id = fleet["done"]
    last = history(app_id)[-1]
    record = application(app_id)
    bad = b'{"note":"\xff\xfe"}'
    fields = [record.uid, last.seq, last.event, last.from_state, last.to_state, last.actor, last.role,
              last.flow_sha256, last.at]  # fmt: skip
    head = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))[:-1]
    body = f"{last.prev_hash}|{head},{last.guards},".encode() + bad + f",{last.changes}]".encode()
    digest = hashlib.sha256(body).hexdigest()
    uid, seq = record.uid, last.seq  # the rows cannot be loaded as text any more
    sql("UPDATE history_events SET payload = CAST(:p AS TEXT), hash = :h WHERE id = :i", p=bad, h=digest, i=last.id)
    sql("UPDATE applications SET head = :h WHERE id = :a", h=digest, a=app_id)
    result = verify(app)
    assert result.exit_code == 1
    assert f"application {uid}: FAILED at seq {seq}: hash does not match" in result.output, result.output
