"""The one wiring place: which areas exist, and the engine with its store and services.

Web, worker and CLI get their engine from here. Importing an area's ``steps`` and
``guards`` modules registers them by the names the flow uses; its ``names`` module declares
the flow names its code relies on. ``registries()`` gathers all of them for the validator.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import current_app

from gzsb.adapters.storage import Storage
from gzsb.common.security import Vault
from gzsb.config import Config
from gzsb.enrollment.service import Services
from gzsb.extensions import db
from gzsb.store import SqlStore
from gzsb.workflow.engine import Engine
from gzsb.workflow.history import Redactor
from gzsb.workflow.registry import PAGES, SMS_TEMPLATES, FlowRegistries, global_registries

# Payload fields never written to the history in clear, whatever the step says.
# "sealed": the encrypted personal fields of data["basic_info"] (gzsb.common.security.SEALED).
SENSITIVE_FIELDS = ("name", "id_number", "mobile", "address", "password", "code", "photo", "id_card", "sealed")


# One folder per area of the journey; each may hold steps, guards and a views blueprint.
AREAS = (
    "accounts", "enrollment", "identity", "payments", "materials", "staff", "onsite", "regform", "admin", "audit",
    "appeals",
)  # fmt: skip


def _area_modules(kind: str) -> list[Any]:
    modules = []
    for area in AREAS:
        try:
            modules.append(importlib.import_module(f"gzsb.{area}.{kind}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"gzsb.{area}.{kind}":
                raise
    return modules


def import_areas() -> None:
    """Register every area's guards, steps and needed flow names (idempotent)."""
    _area_modules("guards")
    _area_modules("steps")
    _area_modules("names")


# Each state's `page` names one of these templates.
PAGE_TEMPLATES = Path(__file__).parent / "templates" / "pages"


def registries(config: Any = None) -> FlowRegistries:
    """The registries a flow is validated against, without creating a Flask app: areas'
    guards, steps and needs, the page templates on disk, the SMS templates of ``config`` (a
    config class, or a Flask app's config mapping; default: ``gzsb.config.Config``)."""
    config = Config if config is None else config
    sms = config["SMS_TEMPLATES"] if isinstance(config, Mapping) else config.SMS_TEMPLATES
    import_areas()
    for page in sorted(PAGE_TEMPLATES.glob("*.html")):
        PAGES.add(page.stem, page.stem)
    for name in sms:
        SMS_TEMPLATES.add(name, name)
    return global_registries()


# Areas with more than one views module name the extra ones here.
EXTRA_VIEWS = (
    "gzsb.enrollment.catalog_views",
    "gzsb.enrollment.api",
    "gzsb.accounts.first_login",
    "gzsb.accounts.devsms",
    "gzsb.admin.flow_views",
    "gzsb.admin.flow_job_views",
)


def blueprints() -> list[Any]:
    """Every area's blueprint (``bp`` of its views modules), in registration order."""
    modules = _area_modules("views") + [importlib.import_module(name) for name in EXTRA_VIEWS]
    return [module.bp for module in modules]


def vault() -> Vault:
    return current_app.extensions["gzsb.vault"]


def storage() -> Storage:
    return current_app.extensions["gzsb.storage"]


def redactor() -> Redactor:
    # The app keeps one (create_app): keying the HMAC is a tenth of a 流程页面's engine() call.
    made: Redactor | None = current_app.extensions.get("gzsb.redactor")
    return made if made is not None else Redactor(current_app.config["HISTORY_KEY"], SENSITIVE_FIELDS)


def engine() -> Engine:
    session = db.session
    return Engine(
        SqlStore(session),
        redactor=redactor(),
        services=Services(session, vault()),
        clock=current_app.extensions["gzsb.clock"],
    )
