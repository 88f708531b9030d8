"""A real Redis (TEST_REDIS_URL) with a key prefix of its own per test, and apps with a waiting room."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from gzsb.app import create_app
from gzsb.config import ROOT, TestConfig, test_redis_url
from gzsb.extensions import db
from gzsb.store import publish
from gzsb.waitroom.room import Room, Settings
from gzsb.workflow.loader import load_flow_file
from tests.conftest import Clock

FLOW_FILE = ROOT / "flows" / "enrollment.yaml"


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    url = test_redis_url()
    if not url:
        pytest.skip("TEST_REDIS_URL is not set: the waiting room tests need a real Redis")
    client = redis.Redis.from_url(url)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    name = f"test:wr:{uuid.uuid4().hex}:"
    yield name
    keys = list(redis_client.scan_iter(f"{name}*"))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def make_room(redis_client: redis.Redis, prefix: str) -> Callable[..., Room]:
    def make(seed: int = 1, **settings: Any) -> Room:
        return Room(redis_client, Settings(**settings), prefix=prefix, seed=lambda: seed)

    return make


@pytest.fixture
def make_app(prefix: str, tmp_path: Path, redis_client: redis.Redis) -> Callable[..., Flask]:
    """An app with the waiting room on the test Redis; apps made by one test share its queue."""

    def make(clock: Clock, name: str = "a", **config: Any) -> Flask:
        values = {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / f'{name}.sqlite3'}",
            "WAITROOM_REDIS_URL": test_redis_url(),
            "WAITROOM_PREFIX": prefix,
            "WAITROOM_SETTINGS_TTL": 0.0,
            **config,
        }
        app = create_app(type("WaitroomConfig", (TestConfig,), values), clock=clock)
        with app.app_context():
            db.create_all()
            publish(db.session, load_flow_file(FLOW_FILE))
            db.session.remove()
        return app

    return make
