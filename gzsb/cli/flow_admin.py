"""`flask flow versions|diff|impact|migrate|propose|approve|reject|proposals` (issue 11).

Thin: everything is in ``gzsb.admin.flows``. Output in English; refusals go to stderr with
exit status 1. ``--by NAME`` is recorded as ``cli:NAME`` (default ``cli:<OS user>``).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import click
from flask import current_app

from gzsb.admin import flows
from gzsb.admin.flows import actor_of
from gzsb.bootstrap import engine
from gzsb.cli.flow import checked
from gzsb.cli.flow import group as flow_cli
from gzsb.errors import FlowError, ServiceError
from gzsb.extensions import db


def now() -> datetime:
    return current_app.extensions["gzsb.clock"]()


def by_actor(by: str | None) -> str:

    if by:
        return actor_of(by)
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in some containers
        return "cli:unknown"


@contextlib.contextmanager
def service_errors() -> Iterator[None]:
    """A refusal is one clear line on stderr and exit status 1, never a traceback."""
    try:
        yield
    except FlowError as exc:
        for line in exc.problems:
            click.echo(line, err=True)
        click.echo(f"{len(exc.problems)} problem(s); not valid", err=True)
        sys.exit(1)
    except ServiceError as exc:
        db.session.rollback()
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)


def _progress(label: str) -> object:
    return lambda n: click.echo(f"{label}: {n} application(s)…", err=True)


def _flow_name() -> str:
    return current_app.config["FLOW_NAME"]


@flow_cli.command("versions")
def flow_versions() -> None:
    """Published versions: id, sha, who published/approved, when, applications, live."""

    rows = flows.versions(db.session, _flow_name())
    if not rows:
        click.echo(f"{_flow_name()}: no version published")
        return
    for r in rows:
        when = (r.last_published_at or r.published_at).isoformat(timespec="seconds")
        approved = f" approved by {r.approved_by}" if r.approved_by else ""
        click.echo(
            f"{'*' if r.live else ' '} {r.id:>4}  {r.sha256[:12]}  {when}  by {r.last_published_by or '-'}{approved}  "
            f"{r.applications} application(s), {r.in_flight} in flight{'  LIVE' if r.live else ''}"
        )


@flow_cli.command("diff")
@click.argument("old")
@click.argument("new")
def flow_diff(old: str, new: str) -> None:
    """Structural diff then the YAML line diff of A and B (version ids or flow files)."""

    with service_errors():
        click.echo(flows.diff(db.session, old, new).to_text())


@flow_cli.command("impact")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--against", type=int, default=None, help="Only applications on this version.")
@click.option("--limit", type=int, default=50, show_default=True, help="Applications listed per class.")
@click.option("--json", "as_json", is_flag=True, help="The whole report as JSON.")
def flow_impact(path: str, against: int | None, limit: int, as_json: bool) -> None:
    """What publishing PATH would do to every in-flight application, now."""

    candidate = checked(path)
    with service_errors():
        report = flows.impact(db.session, candidate, now=now(), against=against, limit=limit,
                              progress=_progress("classified"))  # fmt: skip
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
        return
    click.echo(f"impact of {Path(path).name} ({candidate.sha256[:12]}) at {now().isoformat(timespec='seconds')}")
    click.echo(report.to_text())
    for klass, items in report.items.items():
        if klass == "unaffected" or not items:
            continue
        more = " (first ones)" if report.truncated(klass) else ""
        click.echo(f"\n{klass}{more}:")
        for item in items:
            click.echo(f"  {item.uid}  {item.state}  {'; '.join(item.reasons)}")


@flow_cli.command("migrate")
@click.option("--to", "target", type=int, required=True, help="The version to move applications to.")
@click.option("--map", "pairs", multiple=True, help="old=new for a state the target does not have (repeatable).")
@click.option("--only-state", default=None, help="Only applications in this state.")
@click.option("--dry-run", is_flag=True, help="Report what would move; change nothing.")
@click.option("--by", default=None, help="Who asks (default: cli:<OS user>).")
@click.option("--approved-by", default=None, help="The second admin who approved the move.")
@click.option("--reason", default="", help="Recorded with every move.")
@click.option("--quiet", is_flag=True, help="No line per application (summary and refusals only).")
def flow_migrate(
    target: int,
    pairs: tuple[str, ...],
    only_state: str | None,
    dry_run: bool,
    by: str | None,
    approved_by: str | None,
    reason: str,
    quiet: bool,
) -> None:
    """Move in-flight applications to version N: one transaction each, refusals named."""

    def show(item: flows.MigrationItem) -> None:
        failed = item.outcome in ("refused", "failed")
        if failed or not quiet:
            click.echo(item.to_text(), err=failed)

    with service_errors():
        report = flows.migrate(
            db.session, engine(), target, by=by_actor(by),
            approved_by=flows.actor_of(approved_by) if approved_by else None, now=now(),
            mapping=flows.parse_mapping(pairs), only_state=only_state, dry_run=dry_run, reason=reason,
            on_item=show, progress=_progress("migrated"),
        )  # fmt: skip
    click.echo(report.to_text())
    sys.exit(0 if report.ok else 1)


@flow_cli.command("propose")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--by", default=None, help="Who proposes (default: cli:<OS user>).")
@click.option("--note", default="", help="Why (shown to the approver).")
@click.option("--migrate", "migrate_", is_flag=True, help="Migrate in-flight applications on approval.")
@click.option("--map", "pairs", multiple=True, help="old=new, used by the migration on approval.")
def flow_propose(path: str, by: str | None, note: str, migrate_: bool, pairs: tuple[str, ...]) -> None:
    """Propose PATH as the next version; another admin approves or rejects it."""

    flow = checked(path)
    with service_errors():
        found = flows.propose(db.session, flow.text, by=by_actor(by), now=now(), note=note, migrate=migrate_,
                              mapping=flows.parse_mapping(pairs), source=Path(path).name)  # fmt: skip
    click.echo(flows.describe_proposal(found))


@flow_cli.command("approve")
@click.argument("proposal_id", type=int)
@click.option("--by", default=None, help="The approving admin (not the proposer).")
def flow_approve(proposal_id: int, by: str | None) -> None:
    """Approve a proposal: publish it (and migrate, if it asks)."""

    def show(item: flows.MigrationItem) -> None:
        if item.outcome in ("refused", "failed"):
            click.echo(item.to_text(), err=True)

    with service_errors():
        done = flows.approve(db.session, engine(), proposal_id, by=by_actor(by), now=now(), on_item=show,
                             progress=_progress("migrated"))  # fmt: skip
    click.echo(done.publication.describe())
    if done.migration is not None:
        click.echo(done.migration.to_text())
        sys.exit(0 if done.migration.ok else 1)


@flow_cli.command("reject")
@click.argument("proposal_id", type=int)
@click.option("--by", default=None, help="The rejecting admin (not the proposer).")
@click.option("--reason", required=True)
def flow_reject(proposal_id: int, by: str | None, reason: str) -> None:
    """Reject a proposal, with the reason."""

    with service_errors():
        found = flows.reject(db.session, proposal_id, by=by_actor(by), now=now(), reason=reason)
    click.echo(flows.describe_proposal(found))


@flow_cli.command("proposals")
@click.option("--status", default=None, type=click.Choice(["proposed", "rejected", "published"]))
def flow_proposals(status: str | None) -> None:
    """Proposals, newest first."""

    for found in flows.proposals(db.session, status):
        click.echo(flows.describe_proposal(found))


@flow_cli.command("publish")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--by", default=None, help="Who publishes (default: cli:<OS user>).")
def flow_publish(path: str, by: str | None) -> None:
    """Make the flow live: the first version of a flow, or a version published before
    (rollback). A new version of a running flow needs `flow propose` and a second admin."""
    flow = checked(path)
    with service_errors():
        done = flows.publish_direct(db.session, flow, by=by_actor(by), now=now())
    click.echo(done.describe())
