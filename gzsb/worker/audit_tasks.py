"""The log's periodic task: integrate new events and sign a checkpoint every few minutes.

Registered by the worker (gzsb/worker/tasks.py) as a Huey periodic task, e.g.::

    @huey.periodic_task(crontab(minute=f"*/{Config.LOG_CHECKPOINT_MINUTES}"))
    def log_checkpoint() -> None:
        with flask_app.app_context():
            audit_tasks.checkpoint_log()
"""

from __future__ import annotations

import logging

from flask import current_app

from gzsb.audit.log import LogConfig, checkpoint
from gzsb.extensions import db
from gzsb.workflow.checkpoint import Signer

log = logging.getLogger(__name__)


def checkpoint_log() -> int:
    """Integrate and checkpoint (in an app context); returns the checkpoint's tree size."""
    signer = Signer.parse(current_app.config["LOG_SIGNING_KEY"])
    config = LogConfig(signer, signer.name)
    row = checkpoint(db.session, config, batch=current_app.config["LOG_BATCH"])
    log.info("log checkpoint %d: size %d", row.id, row.size)
    return row.size
