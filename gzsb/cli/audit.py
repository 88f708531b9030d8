"""`flask audit …`: verify, replay and export application histories."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from gzsb.audit.service import application_history, verify_all
from gzsb.cli.flow import checked
from gzsb.extensions import db
from gzsb.store import FLOWS
from gzsb.workflow.history import export_lines, replay, verify_export
from gzsb.workflow.loader import load_flow

log = logging.getLogger(__name__)
group = AppGroup("audit", help="Verify, replay and export application histories.")


@group.command("verify")
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
        try:
            with open(export_file, encoding="utf-8") as handle:
                verdict = verify_export(handle, load_flow)
        except UnicodeDecodeError as exc:
            click.echo(f"{export_file}: FAILED: not a history export (invalid UTF-8 at byte {exc.start})", err=True)
            sys.exit(1)
        click.echo(verdict.describe(), err=not verdict.ok)
        sys.exit(0 if verdict.ok else 1)

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


@group.command("replay")
@click.option("--application", "uid", required=True)
@click.option(
    "--flow", "flow_path", required=True, type=click.Path(dir_okay=False), help="Another flow file (what-if)."
)
def audit_replay(uid: str, flow_path: str) -> None:
    """Where would this history stop being legal under another flow?"""
    flow = checked(flow_path, needs=False)
    app, rows = application_history(db.session, uid)
    verdict = replay(uid, flow, rows, state=app.state, check_chain=False)
    if verdict.ok:
        click.echo(f"application {uid}: all {verdict.events} events are legal under {Path(flow_path).name}")
    else:
        where = f"under {Path(flow_path).name} at seq {verdict.bad_seq}"
        click.echo(f"application {uid}: stops being legal {where}: {verdict.problem}")
    sys.exit(0 if verdict.ok else 1)


@group.command("export")
@click.option("--application", "uid", required=True)
@click.option("-o", "--output", default="-", help="File to write (default: stdout).")
def audit_export(uid: str, output: str) -> None:
    """JSON lines that `flask audit verify --file` checks without the database."""
    app, rows = application_history(db.session, uid)
    flow = FLOWS.by_version(db.session, app.flow_version_id)
    earlier = functools.partial(FLOWS.by_sha, db.session)  # versions before a migration
    with click.open_file(output, "w", encoding="utf-8") as handle:
        for line in export_lines(uid, flow, app.state, app.head, rows, flows=earlier):
            handle.write(line + "\n")
