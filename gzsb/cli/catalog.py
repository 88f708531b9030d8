"""`flask catalog import …`: the catalogue of 招生院校 and 专业; the import report shared with `flask registry`.

Exit codes: 0 when every row was imported; 1 when any row was bad (the good rows are
still committed) or the file could not be used at all (nothing imported). Bad rows go to
stderr as ``FILE:LINE: message``; the summary goes to stdout.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from gzsb.enrollment.catalog import FileProblem, ImportReport, import_catalog
from gzsb.extensions import db

log = logging.getLogger(__name__)
group = AppGroup("catalog", help="The catalogue of 招生院校 and 专业.")


def finish(path: str, report: ImportReport) -> None:
    name = Path(path).name
    for line, message in report.problems:
        click.echo(f"{name}:{line}: {message}", err=True)
    click.echo(report.summary())
    sys.exit(0 if report.ok else 1)


def unusable(path: str, exc: FileProblem) -> None:
    db.session.rollback()
    click.echo(f"{Path(path).name}: {exc}; nothing imported", err=True)
    sys.exit(1)


@group.command("import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
def catalog_import(path: str) -> None:
    """Import a CSV of institution_code, institution_name, major_code, major_name[, places].

    Upserts on the institution code and on (institution, major code). Exit 0 if every row
    was good, 1 if any was bad (the good ones are kept).
    """
    try:
        report = import_catalog(db.session, path)
    except FileProblem as exc:
        unusable(path, exc)
        return
    finish(path, report)
