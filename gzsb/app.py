"""create_app(): extensions, registries, blueprints, the one error handler, the CLI."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, g, has_request_context, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from gzsb import cli
from gzsb.accounts.ratelimit import init_limits
from gzsb.accounts.session import current_account, safe_next
from gzsb.adapters.storage import make_storage
from gzsb.bootstrap import blueprints, redactor, registries
from gzsb.common.cookies import VerifiedCookieSessions
from gzsb.common.csrf import csrf_token
from gzsb.common.dbpool import ping_idle_connections
from gzsb.common.lazytx import install_lazy_transactions
from gzsb.common.security import Vault, basic_info_of
from gzsb.config import INSTANCE, ROOT, Config, insecure_defaults
from gzsb.errors import ConfigurationError, InvalidInput, ServiceError, SessionExpired
from gzsb.extensions import csrf, db, migrate
from gzsb.ops import health, metrics
from gzsb.ops.checks import warn_single_node
from gzsb.ops.logs import configure_logging, install_request_ids
from gzsb.waitroom import install as install_waitroom

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


# Requests that as a rule only read: no BEGIN/ROLLBACK until their first write (gzsb.common.lazytx).
_READ_METHODS = frozenset({"GET", "HEAD"})


def _read_request() -> bool:
    return has_request_context() and request.method in _READ_METHODS


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


def engine_options(config: Any) -> dict[str, Any]:
    """The configured engine options plus timeouts, so a hung database fails fast (503)."""
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if str(config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql"):
        connect_args = dict(options.get("connect_args") or {})
        connect_args.setdefault("connect_timeout", int(config["DB_CONNECT_TIMEOUT"]))
        # connect_args replace the URL's own libpq ``options`` (e.g. a search_path): keep both.
        timeout = f"-c statement_timeout={int(config['DB_STATEMENT_TIMEOUT_MS'])}"
        in_url = make_url(str(config["SQLALCHEMY_DATABASE_URI"])).query.get("options")
        in_url = " ".join(in_url) if isinstance(in_url, tuple) else in_url
        connect_args.setdefault("options", f"{in_url} {timeout}" if in_url else timeout)
        options["connect_args"] = connect_args
        options.setdefault("pool_timeout", int(config["DB_POOL_TIMEOUT"]))
    return options


def create_app(config: type[Config] | Any = Config, *, clock: Callable[[], datetime] = _utcnow) -> Flask:
    refuse_default_keys(config)
    app = Flask(__name__, instance_path=str(INSTANCE))
    app.config.from_object(config)
    app.session_interface = VerifiedCookieSessions()  # a cookie verified once is not verified again
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Chinese stays readable in the API
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    warn_single_node(app.config)
    if app.config["PROXY_COUNT"] > 0:  # the client address and scheme as the trusted proxies saw them
        count = int(app.config["PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count)  # type: ignore[method-assign]
    INSTANCE.mkdir(parents=True, exist_ok=True)
    register_names(config)

    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    app.jinja_env.globals["csrf_token"] = csrf_token  # signed once per session token (gzsb.common.csrf)
    app.extensions["gzsb.vault"] = Vault(app.config["DATA_KEY"], app.config["INDEX_KEY"])
    app.extensions["gzsb.clock"] = clock
    with app.app_context():  # the engine Flask-SQLAlchemy made for this app (shared storage backend)
        engine = db.engine
    if engine.dialect.name == "postgresql":  # instead of pool_pre_ping (a round trip per checkout)
        ping_idle_connections(engine, float(app.config["DB_PING_IDLE_SECONDS"]))
        if app.config["DB_LAZY_TRANSACTIONS"]:
            install_lazy_transactions(engine, when=_read_request)
    app.extensions["gzsb.storage"] = make_storage(app.config["STORAGE_BACKEND"], app.config["UPLOADS_DIR"], engine)
    with app.app_context():  # the audit service reads it without importing the wiring module
        app.extensions["gzsb.redactor"] = redactor()

    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    init_limits(app)

    # Flask-WTF's context processor puts its own csrf_token (re-signed on every page) in each
    # template's context, over the Jinja global: ours, run later, wins.
    app.context_processor(lambda: {"account": current_account(), "csrf_token": csrf_token})
    app.add_template_global(basic_info_of, "basic_info_of")
    # First of all hooks (blueprints' before_app_request ran earlier otherwise): the account
    # the log-in gate loads stays in g for the view, instead of being loaded a second time.
    app.before_request_funcs.setdefault(None, []).insert(0, _fresh_g)
    install_request_ids(app)  # after _fresh_g, which empties g
    hooks = app.before_request_funcs[None]
    hooks.insert(1, hooks.pop())  # the request id right after _fresh_g: later hooks' log lines carry it
    metrics.install_metrics(app)

    cli.register(app)

    app.json = BoundedJSON(app)
    _error_pages(app)
    app.after_request(_security_headers)
    install_waitroom(app)  # the opening-hour waiting room in front of everything (needs Redis)

    return app


# ------------------------------------------------------------------ request bodies


class BoundedJSON(DefaultJSONProvider):
    """JSON with a size and nesting bound on request bodies: a deep document is refused
    before the recursive parser sees it (RecursionError would be a 500)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        config = self._app.config
        if len(s) > int(config["JSON_MAX_BYTES"]):
            raise InvalidInput("JSON body too large", {"_schema": ["提交的内容过大"]})
        text = s.decode("utf-8", "replace") if isinstance(s, bytes) else s
        if json_depth(text) > int(config["JSON_MAX_DEPTH"]):
            raise InvalidInput("JSON nested too deeply", {"_schema": ["提交的内容层次过深"]})
        return super().loads(s, **kwargs)


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


# ------------------------------------------------------------------ error pages

# What a student reads for each HTTP error Werkzeug or Flask-WTF raises.
HTTP_MESSAGES = {
    400: "请求有误，请返回上一页重试",
    401: "请先登录",
    403: "无权访问此页面",
    404: "页面不存在",
    405: "不支持该请求方式",
    408: "请求超时，请重试",
    413: "提交的内容过大",
    429: "操作过于频繁，请稍后再试",
    503: "系统繁忙，请稍后再试",
}
DATABASE_DOWN = "系统暂时无法访问，请稍后再试"
UNEXPECTED = "系统出错了，请稍后再试"


class ErrorPage(ServiceError):
    """Any other failure, shown the way our own errors are."""

    def __init__(self, status: int, code: str, public: str) -> None:
        super().__init__(code, public=public)
        self.http_status = status
        self.code = code


def _answer(exc: ServiceError) -> Any:
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        return jsonify(exc.to_dict()), exc.http_status
    return render_template("error.html", error=exc), exc.http_status


def form_page() -> str:
    """The page a refused form was on: its Referer when it is a path of this site (the
    browser sends it on same-origin posts), else the student's current step."""
    referer = urlsplit(request.headers.get("Referer", ""))
    same_site = referer.netloc == request.host
    back = safe_next(referer.path + (f"?{referer.query}" if referer.query else "")) if same_site else None
    if back:
        return back
    return "/application" if request.path.startswith("/application") else "/"


def _database_failed(exc: Exception) -> bool:
    # The server is down or unreachable, the pool is exhausted, or a statement ran out of time.
    return isinstance(exc, (PoolTimeout, OperationalError, InterfaceError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def _error_pages(app: Flask) -> None:
    """The one place where exceptions become HTTP answers: ours, Werkzeug's, anything else."""

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError) -> Any:
        level = logging.WARNING if exc.http_status < 500 else logging.ERROR
        log.log(level, "%s %s → %d %s: %s", request.method, request.path, exc.http_status, exc.code, exc)
        return _answer(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if isinstance(exc, CSRFError):
            log.info("%s %s → 400 csrf: %s", request.method, request.path, exc.description)
            _fresh_g()  # CSRF is checked before our before_request hooks: nothing cached is this request's
            back = form_page()
            # Logged out meanwhile (not the 登录 form itself): 重新登录, then back to the form.
            relogin = current_account() is None and not (request.path + back).startswith("/login")
            return _answer(SessionExpired(str(exc.description), back=back, relogin=relogin))
        message, code = HTTP_MESSAGES.get(status, UNEXPECTED if status >= 500 else HTTP_MESSAGES[400]), "http"
        log.info("%s %s → %d %s", request.method, request.path, status, exc.name)
        body, status = _answer(ErrorPage(status, f"{code}_{status}", message))
        allowed = getattr(exc, "valid_methods", None)
        return body, status, ({"Allow": ", ".join(allowed)} if allowed else {})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        _rollback()
        propagate = app.config.get("PROPAGATE_EXCEPTIONS")
        if (app.testing or app.debug if propagate is None else propagate) and not _database_failed(exc):
            raise exc  # tests and the debugger see the traceback (Flask's PROPAGATE_EXCEPTIONS)
        if _database_failed(exc):
            log.error("%s %s → 503, database unavailable: %s", request.method, request.path, exc)
            g.account = None  # the layout must not ask the database who is logged in
            return _answer(ErrorPage(503, "database_unavailable", DATABASE_DOWN))
        log.exception("%s %s → 500 unexpected error", request.method, request.path)
        return _answer(ErrorPage(500, "unexpected", UNEXPECTED))


def _rollback() -> None:
    try:
        db.session.rollback()
    except SQLAlchemyError:  # the connection itself is gone
        log.warning("rollback after an error failed", exc_info=True)


# ------------------------------------------------------------------ headers

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def _security_headers(response: Any) -> Any:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", CSP)
    # Pages of a logged-in user carry personal data: never kept by a browser or proxy cache.
    personal = g.get("account") is not None or request.path.startswith("/api/")
    if personal and "no-store" not in response.headers.get("Cache-Control", ""):
        response.headers["Cache-Control"] = "no-store"
    return response
