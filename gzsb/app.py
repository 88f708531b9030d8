"""create_app(): extensions, registries, blueprints, the one error handler, the CLI."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from sqlalchemy import event
from sqlalchemy.engine import Engine as SqlEngine

from gzsb import cli
from gzsb.accounts.session import current_account
from gzsb.adapters.storage import make_storage
from gzsb.bootstrap import blueprints, registries
from gzsb.common.security import Vault
from gzsb.config import INSTANCE, ROOT, Config, insecure_defaults
from gzsb.errors import ConfigurationError, ServiceError
from gzsb.extensions import csrf, db, migrate

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"


def register_names(config: Any) -> None:
    """Importing each area's guards and steps registers them; pages and SMS templates are names too."""
    registries(config)


@event.listens_for(SqlEngine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the worker write while the web server reads; foreign keys are off by default.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def _fresh_g() -> None:
    # g lives as long as the app context, which may outlive one request when a caller
    # (the CLI, a test) pushed it: cached user and CSRF token must not leak across requests.
    for name in list(vars(g)):
        delattr(g, name)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def refuse_default_keys(config: Any) -> None:
    """Outside development, a key or URL still at its public default stops the start."""
    defaults = insecure_defaults(config)
    if defaults:
        raise ConfigurationError(
            "refusing to start outside development with development defaults for: "
            + ", ".join(defaults)
            + " (set them in the environment; GZSB_ENV=development only on a developer's machine)"
        )


def create_app(config: type[Config] | Any = Config, *, clock: Callable[[], datetime] = _utcnow) -> Flask:
    refuse_default_keys(config)
    app = Flask(__name__, instance_path=str(INSTANCE))
    app.config.from_object(config)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Chinese stays readable in the API
    INSTANCE.mkdir(parents=True, exist_ok=True)
    register_names(config)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    app.extensions["gzsb.vault"] = Vault(app.config["DATA_KEY"], app.config["INDEX_KEY"])
    app.extensions["gzsb.clock"] = clock
    app.extensions["gzsb.storage"] = make_storage(app.config["STORAGE_BACKEND"], app.config["UPLOADS_DIR"])

    for blueprint in blueprints():
        app.register_blueprint(blueprint)

    app.context_processor(lambda: {"account": current_account()})
    app.before_request(_fresh_g)

    cli.register(app)

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError) -> Any:
        # The one place where our exceptions become HTTP answers.
        level = logging.WARNING if exc.http_status < 500 else logging.ERROR
        log.log(level, "%s %s → %d %s: %s", request.method, request.path, exc.http_status, exc.code, exc)
        if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
            return jsonify(exc.to_dict()), exc.http_status
        return render_template("error.html", error=exc), exc.http_status

    @app.after_request
    def security_headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app
