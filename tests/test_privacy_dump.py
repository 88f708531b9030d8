"""No ID number, mobile or address in clear anywhere in the database after a demo seed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from gzsb.bootstrap import vault
from gzsb.cli.demo import demo_student, seed
from gzsb.common.security import SEALED, basic_info_of
from gzsb.extensions import db
from gzsb.models import Application


@pytest.mark.slow
def test_a_seeded_database_holds_no_personal_data_in_clear(app: Flask, tmp_path: Path) -> None:
    seed(app, per_state=1)
    db.session.remove()
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    dump = "\n".join(sqlite3.connect(url.removeprefix("sqlite:///")).iterdump())
    rows = db.session.scalars(select(Application).where(Application.data.is_not(None))).all()
    with_info = [row for row in rows if (row.data or {}).get("basic_info")]
    assert len(with_info) >= 5  # the seed reached the states after 基本信息
    checked = 0
    for row in with_info:
        info = basic_info_of(row.data, vault())
        student = next(s for s in (demo_student(i) for i in range(1, 400)) if s.id_number == info["id_number"])
        assert SEALED in row.data["basic_info"] and "id_number" not in row.data["basic_info"]
        for secret in (student.id_number, info["mobile"], info["address"]):
            assert secret not in dump, f"{secret} in clear in the database"
        checked += 1
    assert checked == len(with_info)
