"""`flask waitroom …`: switch the opening-hour waiting room and its numbers for every node at once."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from gzsb.enrollment.names import REGISTRATION
from gzsb.extensions import db
from gzsb.store import FLOWS, live_version
from gzsb.waitroom import opening_timestamp, room_from_config
from gzsb.waitroom.room import Room

log = logging.getLogger(__name__)
group = AppGroup("waitroom", help="The opening-hour waiting room (shared by all nodes through Redis).")


def _room() -> Room:
    room = room_from_config(current_app.config)
    if room is None:
        click.echo("no waiting room: set WAITROOM_REDIS_URL (or REDIS_URL)", err=True)
        sys.exit(1)
    return room


def flow_opening() -> float:
    """The earliest opening of the live flow's registration window over all its groups."""
    version = live_version(db.session, current_app.config["FLOW_NAME"])
    if version is None:
        return 0.0
    window = FLOWS.by_version(db.session, version.id).windows.get(REGISTRATION)
    return window.earliest_opening.timestamp() if window is not None else 0.0


def _show(room: Room) -> None:
    settings = room.settings()
    opens = datetime.fromtimestamp(settings.opens, UTC).isoformat() if settings.opens else None
    shown: dict[str, Any] = {
        "enabled": settings.enabled,
        "rate_per_second": settings.rate,
        "active_cap": settings.cap or None,
        "opens": opens,
        "admit_seconds": settings.admit_seconds,
        **room.stats(),
    }
    click.echo(json.dumps(shown, ensure_ascii=False, indent=2))


def _numbers(rate: float | None, cap: int | None, admit_seconds: int | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if rate is not None:
        if rate <= 0:
            raise click.BadParameter("must be above 0", param_hint="--rate")
        values["rate"] = rate
    if cap is not None:
        values["cap"] = max(0, cap)
    if admit_seconds is not None:
        values["admit_seconds"] = max(60, admit_seconds)
    return values


def _opening(text: str | None) -> float:
    try:
        return opening_timestamp(text or "")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--opens") from None


@group.command("status")
def waitroom_status() -> None:
    """The switch, the numbers and the queue."""
    _show(_room())


@group.command("on")
@click.option("--opens", help="the opening (ISO with zone); default: the live flow's earliest registration opening")
@click.option("--no-opening", is_flag=True, help="no pre-opening shuffle: places in order of arrival")
@click.option("--rate", type=float, help="admissions per second over all nodes")
@click.option("--cap", type=int, help="admitted visitors active at once (0: no cap)")
@click.option("--admit-seconds", type=int, help="lifetime of an admission, renewed while active")
def waitroom_on(
    opens: str | None, no_opening: bool, rate: float | None, cap: int | None, admit_seconds: int | None
) -> None:
    """Switch the waiting room on. Visitors before the opening get random places at the opening."""
    room = _room()
    opening = 0.0 if no_opening else (_opening(opens) if opens else flow_opening())
    room.store(enabled=True, opens=opening, **_numbers(rate, cap, admit_seconds))
    log.info("waiting room switched on (opening %s)", opening or "none")
    _show(room)


@group.command("off")
def waitroom_off() -> None:
    """Switch the waiting room off: everybody passes (places are kept until `reset`)."""
    room = _room()
    room.store(enabled=False)
    log.info("waiting room switched off")
    _show(room)


@group.command("set")
@click.option("--rate", type=float)
@click.option("--cap", type=int)
@click.option("--admit-seconds", type=int)
@click.option("--opens", help="ISO with zone; empty string: none")
def waitroom_set(rate: float | None, cap: int | None, admit_seconds: int | None, opens: str | None) -> None:
    """Change the numbers while it runs (every node reads them within seconds)."""
    room = _room()
    values = _numbers(rate, cap, admit_seconds)
    if opens is not None:
        values["opens"] = _opening(opens)
    room.store(**values)
    _show(room)


@group.command("reset")
@click.option("--yes", is_flag=True, help="really forget every place and the opening shuffle")
def waitroom_reset(yes: bool) -> None:
    """Forget every visitor's place and the opening shuffle (the switch and numbers stay)."""
    if not yes:
        click.echo("add --yes: every waiting visitor loses their place", err=True)
        sys.exit(1)
    room = _room()
    room.reset()
    log.info("waiting room reset")
    _show(room)
