"""Admin and auditor commands: one module per `flask <group> …`.

Each module here that defines a module-level ``group`` (a click group) is a command group;
``register`` adds them all, so a new group is one new file (``gzsb/cli/<name>.py``).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

import click
from flask import Flask

log = logging.getLogger(__name__)


def command_groups() -> list[click.Group]:
    """Every module's ``group``, by name."""
    groups = []
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        # ``group`` for one group a module, ``groups`` for several (accounts and points).
        for group in (getattr(module, "group", None), *getattr(module, "groups", ())):
            if isinstance(group, click.Group):
                groups.append(group)
    return sorted(groups, key=lambda group: group.name or "")


def register(app: Flask) -> None:
    for group in command_groups():
        app.cli.add_command(group)
