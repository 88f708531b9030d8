"""Auditor commands: `flask audit verify|replay|export|checkpoint|witness|keygen`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from gzsb.audit.bundle import BUNDLE_FORMAT, export_bundle, verify_bundle
from gzsb.audit.log import LogConfig, LogError, checkpoint, witness_round
from gzsb.audit.service import FleetCheck, LogPolicy, application_history, default_redactor
from gzsb.cli.flow import checked
from gzsb.extensions import db
from gzsb.store import FLOWS
from gzsb.workflow.checkpoint import Signer, Verifier, generate_key
from gzsb.workflow.history_export import export_lines, verify_export
from gzsb.workflow.loader import load_flow
from gzsb.workflow.whatif import whatif

group = audit_cli = AppGroup("audit", help="Verify, replay and export application histories; checkpoint the log.")


def _log_config():  # type: ignore[no-untyped-def]

    signer = Signer.parse(current_app.config["LOG_SIGNING_KEY"])
    return LogConfig(signer, signer.name)


def _policy(log_key: str | None, witness_keys: tuple[str, ...], require_witness: bool):  # type: ignore[no-untyped-def]

    key = Verifier.parse(log_key) if log_key else _log_config().verifier
    pinned = list(witness_keys) or ([current_app.config["WITNESS_KEY"]] if current_app.config["WITNESS_KEY"] else [])
    return LogPolicy(key, key.name, tuple(Verifier.parse(k) for k in pinned), require_witness)


def _fail(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(1)


@audit_cli.command("verify")
@click.option("--application", "uid", default=None, help="Only this application (uid).")
@click.option("--file", "export_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Verify a bundle (or a history export) offline.")  # fmt: skip
@click.option("--log-key", default=None, help="The log's verifier key to pin (default: the configured key's).")
@click.option("--witness-key", "witness_keys", multiple=True, help="A witness verifier key to pin.")
@click.option("--require-witness", "require_witness", default=None, metavar="VKEY",
              help="Require a cosignature by this witness key.")  # fmt: skip
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Processes replaying at once (default: the CPU count).")  # fmt: skip
def audit_verify(
    uid: str | None, export_file: str | None, log_key: str | None, witness_keys: tuple[str, ...],
    require_witness: str | None, jobs: int | None,
) -> None:  # fmt: skip
    """Replay histories, check the data binding and the transparency log; exit 1 if anything fails."""
    keys = witness_keys + ((require_witness,) if require_witness else ())
    try:
        policy = _policy(log_key, keys, require_witness is not None)
    except ValueError as exc:
        _fail(f"bad key: {exc}")
    if export_file:
        _verify_file(export_file, policy)
        return

    check = FleetCheck(db.session, default_redactor(), policy, uid, jobs=jobs or os.cpu_count() or 1)
    for verdict in check.verdicts():
        if not verdict.ok:
            click.echo(verdict.describe(), err=True)
    for problem in check.problems:
        click.echo(f"log: {problem}", err=True)
    run = check.record()
    if uid is not None and check.applications == 0:
        _fail(f"application {uid}: not found")
    where = f"checkpoint size {check.checkpoint.size}" if check.checkpoint is not None else "no checkpoint yet"
    click.echo(
        f"verified {check.applications} application(s), {check.events} event(s): {check.failed} failed; "
        f"log: {check.log_size} leaves, {where}, {len(check.problems)} problem(s), {check.unlogged} event(s) "
        f"not yet logged (run {run.id})"
    )
    sys.exit(0 if run.ok else 1)


def _verify_file(path: str, policy) -> None:  # type: ignore[no-untyped-def]

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        _fail(f"{path}: FAILED: not a history export (invalid UTF-8 at byte {exc.start})")
    if text.startswith('{"checkpoint"') or f'"format":"{BUNDLE_FORMAT}"' in text.split("\n", 1)[0][:200_000]:
        result = verify_bundle(
            text, load_flow, policy.log_key, origin=policy.origin, witness_keys=policy.witness_keys,
            require_witness=policy.require_witness,
        )  # fmt: skip
        click.echo(result.describe(), err=not result.ok)
        sys.exit(0 if result.ok else 1)
    verdict = verify_export(text.splitlines(keepends=True), load_flow)
    click.echo(verdict.describe(), err=not verdict.ok)
    sys.exit(0 if verdict.ok else 1)


@audit_cli.command("replay")
@click.option("--application", "uid", required=True)
@click.option("--flow", "flow_path", required=True, type=click.Path(dir_okay=False), help="Another flow file.")
def audit_replay(uid: str, flow_path: str) -> None:
    """What-if: would this history be legal under another flow, its guards included?"""

    flow = checked(flow_path, needs=False)
    _app, rows = application_history(db.session, uid)
    report = whatif(uid, flow, rows)
    for event in report.events:
        click.echo(event.describe())
    first = report.first_problem
    name = Path(flow_path).name
    if first is None:
        click.echo(f"application {uid}: all {len(report.events)} events are legal under {name}")
        sys.exit(0)
    why = first.problem or "; ".join(g.describe() for g in first.new_guards if g.outcome == "refused")
    click.echo(f"application {uid}: stops being legal under {name} at seq {first.seq}: {why}")
    sys.exit(1)


@audit_cli.command("export")
@click.option("--application", "uid", required=True)
@click.option("-o", "--output", default="-", help="File to write (default: stdout).")
@click.option("--history-only", is_flag=True, help="Only the gzsb-history/2 JSON lines, without the log proofs.")
def audit_export(uid: str, output: str, history_only: bool) -> None:
    """A bundle (events, flows, inclusion proofs, cosigned checkpoint) that `verify --file` checks offline."""

    if history_only:
        app, rows = application_history(db.session, uid)
        flow = FLOWS.by_version(db.session, app.flow_version_id)
        lines = export_lines(uid, flow, app.state, app.head, rows, flows=lambda sha: FLOWS.by_sha(db.session, sha))
        with click.open_file(output, "w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line + "\n")
        return

    data = export_bundle(db.session, uid, default_redactor())  # type: ignore[arg-type]
    with click.open_file(output, "wb") as handle:
        handle.write(data)


@audit_cli.command("checkpoint")
def audit_checkpoint() -> None:
    """Integrate the not-yet-logged events and sign a checkpoint now."""

    row = checkpoint(db.session, _log_config(), batch=current_app.config["LOG_BATCH"])
    click.echo(f"checkpoint {row.id}: size {row.size}")
    click.echo(row.note, nl=False)


@audit_cli.command("witness")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None, help="The witness directory.")
def audit_witness(directory: str | None) -> None:
    """Hand the latest checkpoint and a consistency proof to the witness; store its cosignature."""

    where = Path(directory or current_app.config["WITNESS_DIR"])
    try:
        cosig = witness_round(db.session, _log_config(), where)
    except LogError as exc:
        _fail(str(exc))
    click.echo(f"checkpoint {cosig.checkpoint_id} cosigned by {cosig.witness}")


@audit_cli.command("keygen")
@click.option("--name", required=True, help="The key name, e.g. gzsb.example/log.")
def audit_keygen(name: str) -> None:
    """A new log signing key (set LOG_SIGNING_KEY to the first line; publish the second)."""

    signer, verifier = generate_key(name)
    click.echo(signer)
    click.echo(verifier)
