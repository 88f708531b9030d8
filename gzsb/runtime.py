"""Per-request wiring: the engine bound to the current database session."""

from __future__ import annotations

from flask import current_app

from gzsb.adapters.storage import Storage
from gzsb.extensions import db
from gzsb.security import Vault
from gzsb.services import Services
from gzsb.store import SqlStore
from gzsb.workflow.engine import Engine
from gzsb.workflow.history import Redactor

# Payload fields never written to the history in clear, whatever the step says.
SENSITIVE_FIELDS = ("name", "id_number", "mobile", "address", "password", "code", "photo", "id_card")


def vault() -> Vault:
    return current_app.extensions["gzsb.vault"]


def storage() -> Storage:
    return current_app.extensions["gzsb.storage"]


def redactor() -> Redactor:
    return Redactor(current_app.config["HISTORY_KEY"], SENSITIVE_FIELDS)


def engine() -> Engine:
    session = db.session
    return Engine(
        SqlStore(session),
        redactor=redactor(),
        services=Services(session, vault()),
        clock=current_app.extensions["gzsb.clock"],
    )
