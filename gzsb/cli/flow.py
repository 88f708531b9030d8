"""`flask flow …`: validate, publish and draw registration flows."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from gzsb.bootstrap import registries
from gzsb.errors import FlowError
from gzsb.extensions import db
from gzsb.models import ConfirmationPoint
from gzsb.workflow.graph import render_svg
from gzsb.workflow.spec import FlowSpec
from gzsb.workflow.validate import check_flow_file

log = logging.getLogger(__name__)
group = AppGroup("flow", help="Validate, publish, compare, migrate and draw registration flows.")


def checked(path: str, *, needs: bool = True) -> FlowSpec:
    """The parsed and validated flow; every problem on stderr and exit 1 otherwise.

    ``needs=False`` for flows that will not run (drawings, what-ifs): the names the areas'
    code relies on are not required of them."""
    names = registries(current_app.config)
    try:
        return check_flow_file(path, names if needs else names.without_needs(), known_points())
    except FlowError as exc:
        for line in exc.problems:
            click.echo(line, err=True)
        click.echo(f"{Path(path).name}: {len(exc.problems)} problem(s); not valid", err=True)
        sys.exit(1)


def known_points() -> set[str] | None:
    """The 确认点 codes a window's by_point may name; None when the database cannot be read
    (validating a file on a machine without one checks everything else)."""
    try:
        return set(db.session.scalars(select(ConfirmationPoint.code)))
    except SQLAlchemyError:
        log.warning("confirmation points not readable: by_point codes are not checked", exc_info=True)
        db.session.rollback()
        return None


@group.command("validate")
@click.argument("path", type=click.Path(dir_okay=False))
def flow_validate(path: str) -> None:
    """Check a flow file; list every problem. Exit 0 when valid, 1 otherwise."""
    flow = checked(path)
    click.echo(f"{Path(path).name}: valid ({len(flow.states)} states, {len(flow.transitions)} transitions)")


@group.command("graph")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="flow.svg", show_default=True)
def flow_graph(path: str, output: str) -> None:
    """Draw the flow as SVG (graphviz)."""
    flow = checked(path, needs=False)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_bytes(render_svg(flow))
    click.echo(f"wrote {output}")
