"""The 学籍/学历 registry: CSV import, row by row (see ``gzsb.enrollment.catalog``).

Records are keyed by the blind index of ``id_number`` (the number itself is not stored);
photos go through ``gzsb.common.images.clean_image``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.accounts.idcard import parse_id_number
from gzsb.common.images import MAX_PHOTO_BYTES, ImageProblem, clean_image, read_capped
from gzsb.common.security import Vault, mask_id_number
from gzsb.enrollment.catalog import ImportReport, RowProblem, read_rows, required_text
from gzsb.models import RegistryRecord

log = logging.getLogger(__name__)


REGISTRY_COLUMNS = {
    "id_number": ("身份证号", "id number"),
    "name": ("姓名",),
    "school": ("毕业院校", "院校", "学校"),
    "major": ("专业", "所学专业"),
    "level": ("层次",),
    "study_form": ("学习形式",),
    "graduation_year": ("毕业年份", "毕业年度", "year"),
    "photo": ("照片", "photo_file"),
}
REGISTRY_REQUIRED = ("id_number", "name", "school", "major", "graduation_year")
LEVELS = ("专科", "高职", "本科")
FIRST_YEAR = 1990
# Students still at college are in the registry with their expected year (3-year programmes).
YEARS_AHEAD = 3

_ID_PROBLEMS = {
    "身份证号应为18位，最后一位可以是数字或X": "must be 18 characters, digits with a final digit or X",
    "身份证号中的出生日期无效": "holds an invalid birth date",
    "身份证号校验位不正确，请核对": "has a wrong check digit",
}


@dataclass(frozen=True)
class RegistryRow:
    id_number: str
    name: str
    school: str
    major: str
    level: str
    study_form: str
    graduation_year: int
    photo: bytes | None


def _photo(name: str, photos: Path | None) -> bytes | None:
    if not name:
        return None
    if photos is None:
        raise RowProblem(f"photo {name!r} given but no photo folder")
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise RowProblem(f"photo {name!r} must be a plain file name inside the photo folder")
    path = photos / name
    try:
        if not path.resolve().is_relative_to(photos.resolve()):
            raise RowProblem(f"photo {name!r} is outside the photo folder")
        with path.open("rb") as handle:
            data = read_capped(handle, MAX_PHOTO_BYTES)
    except FileNotFoundError:
        raise RowProblem(f"photo {name!r} not found in {photos}") from None
    except ImageProblem as exc:
        raise RowProblem(f"photo {name!r} is {exc.english}") from None
    except OSError as exc:
        raise RowProblem(f"photo {name!r} cannot be read: {exc.strerror or exc}") from None
    try:
        cleaned, _kind = clean_image(data)
    except ImageProblem as exc:
        raise RowProblem(f"photo {name!r}: {exc.english}") from None
    return cleaned


def parse_registry_row(row: dict, photos: Path | None, this_year: int) -> RegistryRow:
    raw_id = required_text(row, "id_number", 18 + 2)
    try:
        number = parse_id_number(raw_id).value
    except ValueError as exc:
        raise RowProblem(f"id_number {mask_id_number(raw_id)} {_ID_PROBLEMS.get(str(exc), 'is not valid')}") from None
    year_text = required_text(row, "graduation_year", 4)
    try:
        year = int(year_text)
    except ValueError:
        raise RowProblem(f"graduation_year {year_text!r} is not a year") from None
    if not FIRST_YEAR <= year <= this_year + YEARS_AHEAD:
        raise RowProblem(f"graduation_year {year} is out of range {FIRST_YEAR}-{this_year + YEARS_AHEAD}")
    level = row.get("level") or "专科"
    if level not in LEVELS:
        raise RowProblem(f"level {level!r} is not one of {', '.join(LEVELS)}")
    study_form = row.get("study_form") or "普通全日制"
    if len(study_form) > 20:
        raise RowProblem("study_form is longer than 20 characters")
    return RegistryRow(
        number,
        required_text(row, "name", 50),
        required_text(row, "school", 100),
        required_text(row, "major", 100),
        level,
        study_form,
        year,
        _photo(row.get("photo", ""), photos),
    )


def import_registry(
    session: Session, vault: Vault, path: Path | str, photos: Path | str | None = None, *, this_year: int | None = None
) -> ImportReport:
    """Upsert registry records by the ID number's blind index; commits the good rows.

    ``photos`` defaults to the CSV's folder. An empty photo cell keeps the photo a
    record already has.
    """
    path = Path(path)
    folder = Path(photos) if photos is not None else path.parent
    this_year = this_year or date.today().year
    report = ImportReport("registry")
    seen: dict[str, int] = {}
    for line, raw in read_rows(path, REGISTRY_COLUMNS, REGISTRY_REQUIRED):
        report.rows += 1
        try:
            row = parse_registry_row(raw, folder, this_year)
            key = vault.index(row.id_number)
            if key in seen:
                raise RowProblem(f"id_number {mask_id_number(row.id_number)} repeats line {seen[key]}")
        except RowProblem as exc:
            report.bad(line, str(exc))
            continue
        seen[key] = line
        record = session.scalars(select(RegistryRecord).where(RegistryRecord.id_number_index == key)).first()
        values: dict[str, Any] = {
            "name": row.name,
            "school": row.school,
            "major": row.major,
            "level": row.level,
            "study_form": row.study_form,
            "graduation_year": row.graduation_year,
        }
        if row.photo is not None:
            values["photo"] = row.photo
        if record is None:
            session.add(RegistryRecord(id_number_index=key, **values))
            report.count("record(s)", "created")
        else:
            changed = any(getattr(record, k) != v for k, v in values.items())
            for k, v in values.items():
                setattr(record, k, v)
            report.count("record(s)", "updated" if changed else "unchanged")
    session.commit()
    log.info("%s", report.summary())
    return report
