"""The 招生院校/专业 catalogue and the 学籍/学历 registry: CSV imports and image checks.

Both imports work row by row: a bad row is reported with its line number (English, for
the admin's terminal) and skipped, every good row is kept. Importing the same file again
updates the rows it finds and never duplicates them:

- catalogue: institutions by ``institution_code``, majors by (institution, ``major_code``);
- registry: records by the blind index of ``id_number`` (the number itself is not stored).

Rows missing from a later file are left alone (an import never deletes).

Images (registry photos here, evidence uploads in ``gzsb.enrollment.catalog_views``) go through
``clean_image``: size cap before reading, JPEG/PNG by magic bytes, pixel cap before decoding,
then re-encoded (which also drops EXIF metadata such as GPS positions).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.accounts.idcard import parse_id_number
from gzsb.common.security import Vault, mask_id_number
from gzsb.models import Institution, Major, RegistryRecord

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------ images

MAX_PHOTO_BYTES = 2 * 1024 * 1024
MAX_PIXELS = 40_000_000
_MAGIC = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"))
MIMETYPES = {"jpeg": "image/jpeg", "png": "image/png"}
EXTENSIONS = {"jpeg": "jpg", "png": "png"}


class ImageProblem(ValueError):
    """An image was refused; ``english`` for CLIs and logs, ``chinese`` for students."""

    def __init__(self, english: str, chinese: str) -> None:
        super().__init__(english)
        self.english = english
        self.chinese = chinese


def image_kind(head: bytes) -> str | None:
    """'jpeg' or 'png' from the first bytes, else None (the file name is never trusted)."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def read_capped(stream: BinaryIO, max_bytes: int) -> bytes:
    """At most ``max_bytes``; one byte more means the file is too large."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        if max_bytes >= 1024 * 1024:
            limit = f"{max_bytes // (1024 * 1024)}MB"
        else:
            limit = f"{max_bytes // 1024}KB" if max_bytes >= 1024 else f"{max_bytes}B"
        raise ImageProblem(f"larger than {limit}", f"图片不能超过{limit}")
    return data


def clean_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> tuple[bytes, str]:
    """Check and re-encode a JPEG or PNG; returns (bytes, kind)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    kind = image_kind(data[:8])
    if kind is None:
        raise ImageProblem("not a JPEG or PNG file", "仅支持JPG或PNG格式的图片")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            # Only the header is read so far: refuse decompression bombs before decoding.
            width, height = probe.size
            if width * height > max_pixels or width < 1 or height < 1:
                raise ImageProblem(f"{width}x{height} pixels is too large", "图片尺寸过大")
            if probe.format not in ("JPEG", "PNG") or probe.format.lower() != kind:
                raise ImageProblem("content does not match its JPEG/PNG signature", "图片文件已损坏或格式不符")
            probe.load()
            # Phones store portrait shots sideways plus an EXIF rotation; apply it before the
            # re-encoding drops EXIF, or the picture would be stored lying on its side.
            image = ImageOps.exif_transpose(probe) or probe.copy()
    except ImageProblem:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageProblem(f"cannot be decoded ({exc.__class__.__name__})", "图片文件已损坏，无法识别") from None
    out = io.BytesIO()
    if kind == "jpeg":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=90)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue(), kind


# --------------------------------------------------------------------------- CSV rows


class FileProblem(Exception):
    """The file as a whole cannot be imported (unreadable, header missing columns)."""


@dataclass
class ImportReport:
    """What an import did. ``problems`` holds (line number, English message)."""

    kind: str
    rows: int = 0
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def good_rows(self) -> int:
        return self.rows - len({line for line, _ in self.problems})

    def count(self, what: str, outcome: str) -> None:
        bucket = {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}[outcome]
        bucket[what] = bucket.get(what, 0) + 1

    def bad(self, line: int, message: str) -> None:
        self.problems.append((line, message))

    def summary(self) -> str:
        def part(name: str, bucket: dict[str, int]) -> str:
            return ", ".join(f"{n} {w} {name}" for w, n in sorted(bucket.items())) or f"nothing {name}"

        return (
            f"{self.kind}: {self.rows} row(s), {self.good_rows} imported, {len(self.problems)} bad; "
            f"{part('created', self.created)}; {part('updated', self.updated)}; "
            f"{part('unchanged', self.unchanged)}"
        )


def _decode(raw: bytes) -> str:
    # Excel on Chinese Windows saves GB18030/GBK; everything else should be UTF-8 (with or without BOM).
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return raw.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise FileProblem(f"neither UTF-8 nor GB18030 (byte {exc.start})") from None


def read_rows(path: Path, columns: dict[str, tuple[str, ...]], required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """(line number of the row's first line, {column: stripped text}) for every data row.

    ``columns`` maps each column name to the header spellings accepted for it (English
    names and the Chinese ones admins type).
    """
    try:
        text = _decode(path.read_bytes())
    except OSError as exc:
        raise FileProblem(f"cannot read: {exc.strerror or exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise FileProblem("the file is empty") from None
    except csv.Error as exc:
        raise FileProblem(f"line 1: {exc}") from None
    spelling = {alias.strip().lower(): name for name, aliases in columns.items() for alias in (name, *aliases)}
    positions: dict[str, int] = {}
    for i, title in enumerate(header):
        name = spelling.get(title.strip().lower())
        if name is not None and name not in positions:
            positions[name] = i
    missing = [c for c in required if c not in positions]
    if missing:
        raise FileProblem(f"line 1: missing column(s) {', '.join(missing)} (header: {', '.join(header)})")
    line = reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileProblem(f"line {start}: {exc}") from None
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        yield start, {name: (cells[i].strip() if i < len(cells) else "") for name, i in positions.items()}


class RowProblem(ValueError):
    pass


def _required(row: dict, name: str, max_length: int) -> str:
    value = row.get(name, "")
    if not value:
        raise RowProblem(f"{name} is required")
    if len(value) > max_length:
        raise RowProblem(f"{name} is longer than {max_length} characters")
    return value


def _code(row: dict, name: str) -> str:
    value = _required(row, name, 20).upper()
    if not re.fullmatch(r"[0-9A-Z]{2,20}", value):
        raise RowProblem(f"{name} {value!r} must be 2-20 letters or digits")
    return value


# ------------------------------------------------------------------------ catalogue

CATALOG_COLUMNS = {
    "institution_code": ("院校代码", "institution code"),
    "institution_name": ("院校名称", "institution name", "institution"),
    "major_code": ("专业代码", "major code"),
    "major_name": ("专业名称", "major name", "major"),
    "places": ("招生计划", "计划数", "plan"),
}
CATALOG_REQUIRED = ("institution_code", "institution_name", "major_code", "major_name")


@dataclass(frozen=True)
class CatalogRow:
    institution_code: str
    institution_name: str
    major_code: str
    major_name: str
    places: int


def parse_catalog_row(row: dict) -> CatalogRow:
    places_text = row.get("places", "")
    if places_text == "":
        places = 0
    else:
        try:
            places = int(places_text)
        except ValueError:
            raise RowProblem(f"places {places_text!r} is not a whole number") from None
        if not 0 <= places <= 100_000:
            raise RowProblem(f"places {places} is out of range 0-100000")
    return CatalogRow(
        _code(row, "institution_code"),
        _required(row, "institution_name", 100),
        _code(row, "major_code"),
        _required(row, "major_name", 100),
        places,
    )


def import_catalog(session: Session, path: Path | str) -> ImportReport:
    """Upsert institutions and majors; commits the good rows."""
    report = ImportReport("catalog")
    institutions = {i.code: i for i in session.scalars(select(Institution))}
    majors = {(m.institution.code, m.code): m for m in session.scalars(select(Major).join(Major.institution))}
    seen_institution: dict[str, tuple[str, int]] = {}
    seen_major: dict[tuple[str, str], int] = {}
    touched_institutions: set[str] = set()
    for line, raw in read_rows(Path(path), CATALOG_COLUMNS, CATALOG_REQUIRED):
        report.rows += 1
        try:
            row = parse_catalog_row(raw)
            first = seen_institution.get(row.institution_code)
            if first is not None and first[0] != row.institution_name:
                raise RowProblem(
                    f"institution {row.institution_code} is named {first[0]!r} on line {first[1]}, "
                    f"not {row.institution_name!r}"
                )
            key = (row.institution_code, row.major_code)
            if key in seen_major:
                raise RowProblem(
                    f"major {row.major_code} of institution {row.institution_code} repeats line {seen_major[key]}"
                )
        except RowProblem as exc:
            report.bad(line, str(exc))
            continue
        seen_institution.setdefault(row.institution_code, (row.institution_name, line))
        seen_major[key] = line

        institution = institutions.get(row.institution_code)
        if institution is None:
            institution = Institution(code=row.institution_code, name=row.institution_name)
            session.add(institution)
            institutions[row.institution_code] = institution
            report.count("institution(s)", "created")
        elif row.institution_code not in touched_institutions:
            changed = institution.name != row.institution_name
            institution.name = row.institution_name
            report.count("institution(s)", "updated" if changed else "unchanged")
        touched_institutions.add(row.institution_code)

        major = majors.get(key)
        if major is None:
            major = Major(institution=institution, code=row.major_code, name=row.major_name, places=row.places)
            session.add(major)
            majors[key] = major
            report.count("major(s)", "created")
        else:
            changed = (major.name, major.places) != (row.major_name, row.places)
            major.name, major.places = row.major_name, row.places
            report.count("major(s)", "updated" if changed else "unchanged")
    session.commit()
    log.info("%s", report.summary())
    return report


# -------------------------------------------------------------------------- registry

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
    raw_id = _required(row, "id_number", 18 + 2)
    try:
        number = parse_id_number(raw_id).value
    except ValueError as exc:
        raise RowProblem(f"id_number {mask_id_number(raw_id)} {_ID_PROBLEMS.get(str(exc), 'is not valid')}") from None
    year_text = _required(row, "graduation_year", 4)
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
        _required(row, "name", 50),
        _required(row, "school", 100),
        _required(row, "major", 100),
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


# --------------------------------------------------------------------------- lookups


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_catalog(session: Session, query: str = "", *, institution: str = "", limit: int = 60) -> list[dict]:
    """(institution, major) pairs whose codes or names contain every word of ``query``."""
    stmt = select(Major, Institution).join(Major.institution).order_by(Institution.code, Major.code)
    if institution:
        stmt = stmt.where(Institution.code == institution.upper())
    for word in query.split()[:5]:
        like = f"%{_escape_like(word[:40])}%"
        stmt = stmt.where(
            Institution.name.ilike(like, escape="\\")
            | Institution.code.ilike(like, escape="\\")
            | Major.name.ilike(like, escape="\\")
            | Major.code.ilike(like, escape="\\")
        )
    return [
        {
            "institution": i.code,
            "institution_name": i.name,
            "major": m.code,
            "major_name": m.name,
            "places": m.places,
        }
        for m, i in session.execute(stmt.limit(limit))
    ]


def catalogue(session: Session) -> list[dict]:
    """Every institution with its majors, for the plain selects of the 志愿 page."""
    rows = session.scalars(select(Institution).order_by(Institution.code)).all()
    return [
        {
            "code": i.code,
            "name": i.name,
            "majors": [{"code": m.code, "name": m.name, "places": m.places} for m in i.majors],
        }
        for i in rows
    ]
