"""Uploads in the shared database (STORAGE_BACKEND=database) on the real PostgreSQL: what one
node writes another reads, and retention run by any node deletes it for all of them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from gzsb.app import create_app
from gzsb.bootstrap import engine, storage
from gzsb.cli.demo import CATALOG_CSV
from gzsb.config import ROOT, TestConfig, test_database_url
from gzsb.enrollment.catalog import import_catalog
from gzsb.extensions import db
from gzsb.models import ConfirmationPoint, StoredFile, Upload
from gzsb.store import publish
from gzsb.worker.retention import delete_orphans, sweep
from gzsb.workflow.loader import load_flow_file
from tests.support import PIXEL, identity_uploads, new_applicant, to_confirming


@pytest.fixture
def two_nodes(clock) -> Iterator[tuple[Flask, Flask]]:
    url = test_database_url()
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL integration test skipped")
    config = type("SharedFiles", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": url, "STORAGE_BACKEND": "database"})
    first, second = create_app(config, clock=clock), create_app(config, clock=clock)
    with first.app_context():
        db.drop_all()
        db.create_all()
        publish(db.session, load_flow_file(ROOT / "flows" / "enrollment.yaml"))
        db.session.add(ConfirmationPoint(code="NK01", name="南开区招生考试中心"))
        db.session.commit()
        import_catalog(db.session, CATALOG_CSV)
    yield first, second
    with first.app_context():
        db.session.remove()
        db.drop_all()


def test_a_file_written_on_one_node_is_read_on_another(two_nodes) -> None:
    first, second = two_nodes
    with first.app_context():
        who = new_applicant(901)
        images = identity_uploads(who)
        key = db.session.query(Upload).filter_by(uid=images["photo"]).one().storage_key
        written = storage().get(key)
    with second.app_context():
        assert storage().exists(key) and storage().get(key) == written
        assert db.session.get(StoredFile, key).size == len(written)


def test_retention_on_one_node_deletes_for_every_node(two_nodes, clock) -> None:
    first, second = two_nodes
    with first.app_context():
        who = new_applicant(902)
        to_confirming(engine(), who)
        engine().fire(who.application_id, "confirm_info", who.actor, {})
        images = identity_uploads(who)
        db.session.commit()  # the other node sees committed rows only
        card = db.session.query(Upload).filter_by(uid=images["id_card"]).one().storage_key
        storage().put("photo/orphan/" + "c" * 32 + ".png", PIXEL.data)  # its row never committed
    with second.app_context():
        later = clock() + timedelta(days=second.config["UPLOAD_RETENTION_DAYS"]["id_card"] + 1)
        assert delete_orphans(db.session, storage(), datetime.now(UTC), timedelta(hours=1)) == 0  # too young
        counts = sweep(db.session, storage(), later, second.config)
        assert (counts["expired"], counts["orphans"]) == (1, 1)
    with first.app_context():
        assert not storage().exists(card)
        assert not storage().exists("photo/orphan/" + "c" * 32 + ".png")
        assert db.session.query(StoredFile).count() == 1  # the 证件照 stays
