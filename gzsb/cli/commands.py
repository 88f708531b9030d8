"""Admin and auditor commands: `flask flow …`, `flask audit …`, `flask demo …`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from gzsb.cli import data as cli_data
from gzsb.cli.audit import audit_cli
from gzsb.errors import FlowError
from gzsb.extensions import db

flow_cli = AppGroup("flow", help="Validate, publish and draw registration flows.")
demo_cli = AppGroup("demo", help="Demo data.")


def _checked(path: str):  # type: ignore[no-untyped-def]
    from gzsb.workflow.validate import check_flow_file

    try:
        return check_flow_file(path)
    except FlowError as exc:
        for line in exc.problems:
            click.echo(line, err=True)
        click.echo(f"{Path(path).name}: {len(exc.problems)} problem(s); not valid", err=True)
        sys.exit(1)


@flow_cli.command("validate")
@click.argument("path", type=click.Path(dir_okay=False))
def flow_validate(path: str) -> None:
    """Check a flow file; list every problem. Exit 0 when valid, 1 otherwise."""
    flow = _checked(path)
    click.echo(f"{Path(path).name}: valid ({len(flow.states)} states, {len(flow.transitions)} transitions)")


@flow_cli.command("publish")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--by", default="cli", help="Who publishes (recorded with the version).")
def flow_publish(path: str, by: str) -> None:
    """Store the flow as an immutable version; new applications start on it."""
    from gzsb.store import publish

    flow = _checked(path)
    row, created = publish(db.session, flow, by)
    verb = "published" if created else "already published"
    click.echo(f"{flow.flow}: {verb} as version {row.id} (sha256 {row.sha256})")


@flow_cli.command("graph")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="flow.svg", show_default=True)
def flow_graph(path: str, output: str) -> None:
    """Draw the flow as SVG (graphviz)."""
    from gzsb.workflow.graph import render_svg

    flow = _checked(path)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_bytes(render_svg(flow))
    click.echo(f"wrote {output}")


@demo_cli.command("seed")
@click.option("--per-state", default=2, show_default=True, help="Applications per state.")
def demo_seed(per_state: int) -> None:
    """Demo accounts and applications in every state, each driven there through the engine."""
    from gzsb.cli.demo import seed

    summary = seed(current_app, per_state=per_state)
    for line in summary:
        click.echo(line)


def register(app: Flask) -> None:
    app.cli.add_command(flow_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(demo_cli)
    cli_data.register(app)
