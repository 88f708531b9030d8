"""Admin commands for data: `flask catalog import …`, `flask registry import …`, `flask payments refunds`.

Exit codes: 0 when every row was imported; 1 when any row was bad (the good rows are
still committed) or the file could not be used at all (nothing imported). Bad rows go to
stderr as ``FILE:LINE: message``; the summary goes to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from gzsb.enrollment.catalog import FileProblem, ImportReport, import_catalog, import_registry
from gzsb.extensions import db

catalog_cli = AppGroup("catalog", help="The catalogue of 招生院校 and 专业.")
registry_cli = AppGroup("registry", help="The 学籍/学历 registry.")


def _finish(path: str, report: ImportReport) -> None:
    name = Path(path).name
    for line, message in report.problems:
        click.echo(f"{name}:{line}: {message}", err=True)
    click.echo(report.summary())
    sys.exit(0 if report.ok else 1)


def _unusable(path: str, exc: FileProblem) -> None:
    db.session.rollback()
    click.echo(f"{Path(path).name}: {exc}; nothing imported", err=True)
    sys.exit(1)


@catalog_cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
def catalog_import(path: str) -> None:
    """Import a CSV of institution_code, institution_name, major_code, major_name[, places].

    Upserts on the institution code and on (institution, major code). Exit 0 if every row
    was good, 1 if any was bad (the good ones are kept).
    """
    try:
        report = import_catalog(db.session, path)
    except FileProblem as exc:
        _unusable(path, exc)
        return
    _finish(path, report)


@registry_cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--photos",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Folder of the photo files the CSV names (default: the CSV's folder).",
)
def registry_import(path: str, photos: str | None) -> None:
    """Import a CSV of id_number, name, school, major, level, study_form, graduation_year, photo.

    Upserts on the ID number (through its blind index). Photos must be JPEG or PNG. Exit 0
    if every row was good, 1 if any was bad (the good ones are kept).
    """
    try:
        report = import_registry(db.session, current_app.extensions["gzsb.vault"], path, photos)
    except FileProblem as exc:
        _unusable(path, exc)
        return
    _finish(path, report)


payments_cli = AppGroup("payments", help="Payments received from the gateways.")


@payments_cli.command("refunds")
@click.option("--all", "show_all", is_flag=True, help="Also the ones already refunded.")
def payments_refunds(show_all: bool) -> None:
    """Money that arrived for an expired or already-paid order and must go back to the payer."""
    from sqlalchemy import select

    from gzsb.models import Application, Payment

    statuses = ("refund_pending", "refunded") if show_all else ("refund_pending",)
    rows = db.session.execute(
        select(Payment, Application.uid)
        .join(Application, Application.id == Payment.application_id)
        .where(Payment.status.in_(statuses))
        .order_by(Payment.received_at)
    ).all()
    for payment, uid in rows:
        yuan = f"{payment.amount_fen // 100}.{payment.amount_fen % 100:02d}"
        click.echo(
            f"{payment.received_at:%Y-%m-%d %H:%M} {payment.status} application {uid} order {payment.order_number} "
            f"{payment.gateway}/{payment.trade_no} {yuan} {payment.currency}: {payment.reason}"
        )
    click.echo(f"{len(rows)} payment(s) to refund" if not show_all else f"{len(rows)} payment(s)")


def register(app: Flask) -> None:
    app.cli.add_command(catalog_cli)
    app.cli.add_command(registry_cli)
    app.cli.add_command(payments_cli)
