"""Admin and auditor commands: `flask flow …`, `flask audit …`, `flask demo …`."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from gzsb.cli import data as cli_data
from gzsb.errors import FlowError
from gzsb.extensions import db

flow_cli = AppGroup("flow", help="Validate, publish, compare, migrate and draw registration flows.")
audit_cli = AppGroup("audit", help="Verify, replay and export application histories.")
demo_cli = AppGroup("demo", help="Demo data.")


def _checked(path: str, *, needs: bool = True):  # type: ignore[no-untyped-def]
    """``needs=False`` for flows that will not run (drawings, what-ifs): the names the areas'
    code relies on are not required of them."""
    from gzsb.bootstrap import registries
    from gzsb.workflow.validate import check_flow_file

    names = registries(current_app.config)
    try:
        return check_flow_file(path, names if needs else names.without_needs())
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
@click.option("--by", default=None, help="Who publishes (default: cli:<OS user>).")
def flow_publish(path: str, by: str | None) -> None:
    """Make the flow live: the first version of a flow, or a version published before
    (rollback). A new version of a running flow needs `flow propose` and a second admin."""
    from gzsb.admin import flows
    from gzsb.cli.flow_admin import by_actor, now, service_errors

    flow = _checked(path)
    with service_errors():
        done = flows.publish_direct(db.session, flow, by=by_actor(by), now=now())
    click.echo(done.describe())


@flow_cli.command("graph")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="flow.svg", show_default=True)
def flow_graph(path: str, output: str) -> None:
    """Draw the flow as SVG (graphviz)."""
    from gzsb.workflow.graph import render_svg

    flow = _checked(path, needs=False)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_bytes(render_svg(flow))
    click.echo(f"wrote {output}")


@audit_cli.command("verify")
@click.option("--application", "uid", default=None, help="Only this application (uid).")
@click.option(
    "--file",
    "export_file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Verify an export offline.",
)
def audit_verify(uid: str | None, export_file: str | None) -> None:
    """Replay histories under their own flow versions; exit 1 if any fails."""
    if export_file:
        from gzsb.workflow.history import verify_export
        from gzsb.workflow.loader import load_flow

        try:
            with open(export_file, encoding="utf-8") as handle:
                verdict = verify_export(handle, load_flow)
        except UnicodeDecodeError as exc:
            click.echo(f"{export_file}: FAILED: not a history export (invalid UTF-8 at byte {exc.start})", err=True)
            sys.exit(1)
        click.echo(verdict.describe(), err=not verdict.ok)
        sys.exit(0 if verdict.ok else 1)

    from gzsb.audit.service import verify_all

    checked = failed = events = 0
    for verdict in verify_all(db.session, uid):
        checked += 1
        events += verdict.events
        if not verdict.ok:
            failed += 1
            click.echo(verdict.describe(), err=True)
    if uid is not None and checked == 0:
        click.echo(f"application {uid}: not found", err=True)
        sys.exit(1)
    click.echo(f"verified {checked} application(s), {events} event(s): {failed} failed")
    sys.exit(1 if failed else 0)


@audit_cli.command("replay")
@click.option("--application", "uid", required=True)
@click.option(
    "--flow", "flow_path", required=True, type=click.Path(dir_okay=False), help="Another flow file (what-if)."
)
def audit_replay(uid: str, flow_path: str) -> None:
    """Where would this history stop being legal under another flow?"""
    from gzsb.audit.service import application_history
    from gzsb.workflow.history import replay

    flow = _checked(flow_path, needs=False)
    app, rows = application_history(db.session, uid)
    verdict = replay(uid, flow, rows, state=app.state, check_chain=False)
    if verdict.ok:
        click.echo(f"application {uid}: all {verdict.events} events are legal under {Path(flow_path).name}")
    else:
        where = f"under {Path(flow_path).name} at seq {verdict.bad_seq}"
        click.echo(f"application {uid}: stops being legal {where}: {verdict.problem}")
    sys.exit(0 if verdict.ok else 1)


@audit_cli.command("export")
@click.option("--application", "uid", required=True)
@click.option("-o", "--output", default="-", help="File to write (default: stdout).")
def audit_export(uid: str, output: str) -> None:
    """JSON lines that `flask audit verify --file` checks without the database."""
    from gzsb.audit.service import application_history
    from gzsb.store import FLOWS
    from gzsb.workflow.history import export_lines

    app, rows = application_history(db.session, uid)
    flow = FLOWS.by_version(db.session, app.flow_version_id)
    earlier = functools.partial(FLOWS.by_sha, db.session)  # versions before a migration
    with click.open_file(output, "w", encoding="utf-8") as handle:
        for line in export_lines(uid, flow, app.state, app.head, rows, flows=earlier):
            handle.write(line + "\n")


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
    from gzsb.cli import accounts as cli_accounts  # accounts and 确认点 (issue 11)

    cli_accounts.register(app)
    from gzsb.cli import flow_admin  # noqa: F401  versions, diff, impact, migrate, propose (issue 11)
