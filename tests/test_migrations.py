"""The Alembic migrations in migrations/ build exactly the schema of gzsb/models/.

Runs on a fresh SQLite file, and on PostgreSQL when TEST_DATABASE_URL is set (in a schema
of its own, dropped afterwards, so other tests using that database are not disturbed).

When a model changes, these tests fail until a migration is added:

    FLASK_APP=gzsb.app:create_app DATABASE_URL=sqlite:////tmp/gzsb-migrate.sqlite3 \\
        .venv/bin/flask db upgrade
    FLASK_APP=gzsb.app:create_app DATABASE_URL=sqlite:////tmp/gzsb-migrate.sqlite3 \\
        .venv/bin/flask db migrate -m "what changed"
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from gzsb import config as gzsb_config
from gzsb.app import create_app
from gzsb.config import ROOT, TestConfig
from gzsb.extensions import db

MIGRATIONS = ROOT / "migrations"
VERSION_TABLE = "alembic_version"


def _sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"


def _postgres_url() -> Iterator[str]:
    url = gzsb_config.test_database_url()  # imported by name, pytest would collect it as a test
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set: migrations not checked on PostgreSQL")
    schema = f"test_migrations_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        # Every connection of the app then creates and finds its tables in that schema only.
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield from _sqlite_url(tmp_path)
    else:
        yield from _postgres_url()


@pytest.fixture
def migrate_app(database_url: str) -> Iterator[Flask]:
    """An app on an empty database; nothing created yet (unlike conftest's `app`)."""
    config = type("MigrationsConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": database_url})
    app = create_app(config)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def _alembic_config(app: Flask) -> AlembicConfig:
    # Flask-Migrate's own configuration (migrations/alembic.ini + env.py), without its
    # error handler that turns failures into sys.exit(1).
    return app.extensions["migrate"].migrate.get_config(str(MIGRATIONS))


def _database_columns() -> dict[str, set[str]]:
    inspector = inspect(db.engine)
    return {
        table: {column["name"] for column in inspector.get_columns(table)}
        for table in inspector.get_table_names()
        if table != VERSION_TABLE
    }


def _model_columns() -> dict[str, set[str]]:
    return {table.name: {column.name for column in table.columns} for table in db.metadata.sorted_tables}


def test_there_is_one_head() -> None:
    # Two migrations written in parallel on top of the same revision must be merged
    # (`flask db merge heads`) before they can be applied.
    heads = ScriptDirectory(str(MIGRATIONS)).get_heads()
    assert len(heads) == 1, f"migrations/ has several heads {heads}: run `flask db merge heads`"


def test_upgrade_creates_the_tables_and_columns_of_the_models(migrate_app: Flask) -> None:
    assert _database_columns() == {}
    command.upgrade(_alembic_config(migrate_app), "head")

    tables, models = _database_columns(), _model_columns()
    assert sorted(tables) == sorted(models), "tables created by the migrations ≠ tables of gzsb/models/"
    for name, columns in models.items():
        assert tables[name] == columns, f"{name}: migrated columns ≠ model columns"

    heads = ScriptDirectory(str(MIGRATIONS)).get_heads()
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_heads() == tuple(heads)


def test_upgraded_schema_matches_the_models_exactly(migrate_app: Flask) -> None:
    """Types, nullability, indexes, unique and foreign keys too (what autogenerate compares)."""
    command.upgrade(_alembic_config(migrate_app), "head")
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == [], (
        "gzsb/models/ differs from the migrated schema; add a migration (`flask db migrate -m ...`):\n"
        + "\n".join(map(repr, differences))
    )


def test_downgrade_to_base_and_upgrade_again(migrate_app: Flask) -> None:
    config = _alembic_config(migrate_app)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    assert _database_columns() == {}
    command.upgrade(config, "head")
    assert sorted(_database_columns()) == sorted(_model_columns())
