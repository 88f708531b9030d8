"""`flask registry import …`: the 学籍/学历 registry (exit codes as `flask catalog import`)."""

from __future__ import annotations

import logging

import click
from flask import current_app
from flask.cli import AppGroup

from gzsb.cli.catalog import finish, unusable
from gzsb.enrollment.catalog import FileProblem
from gzsb.enrollment.registry import import_registry
from gzsb.extensions import db

log = logging.getLogger(__name__)
group = AppGroup("registry", help="The 学籍/学历 registry.")


@group.command("import")
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
        unusable(path, exc)
        return
    finish(path, report)
