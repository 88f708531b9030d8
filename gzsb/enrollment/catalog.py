"""The 招生院校/专业 catalogue and the 学籍/学历 registry: CSV imports and search.

Both imports work row by row: a bad row is reported with its line number (English, for
the admin's terminal) and skipped, every good row is kept. Importing the same file again
updates the rows it finds and never duplicates them:

- catalogue: institutions by ``institution_code``, majors by (institution, ``major_code``);
- registry: records by the blind index of ``id_number`` (the number itself is not stored).

Rows missing from a later file are left alone (an import never deletes).

The registry import is in ``gzsb.enrollment.registry``; image checks in ``gzsb.common.images``.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.models import Institution, Major

log = logging.getLogger(__name__)


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


def required_text(row: dict, name: str, max_length: int) -> str:
    value = row.get(name, "")
    if not value:
        raise RowProblem(f"{name} is required")
    if len(value) > max_length:
        raise RowProblem(f"{name} is longer than {max_length} characters")
    return value


def _code(row: dict, name: str) -> str:
    value = required_text(row, name, 20).upper()
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
        required_text(row, "institution_name", 100),
        _code(row, "major_code"),
        required_text(row, "major_name", 100),
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
    """Every institution with its majors, for the plain selects of the 志愿 page: one
    statement (loading each institution's majors lazily was one more per institution)."""
    rows = session.execute(
        select(Institution.code, Institution.name, Major.code, Major.name, Major.places)
        .outerjoin(Major, Major.institution_id == Institution.id)
        .order_by(Institution.code, Major.code)
    )
    out: list[dict] = []
    for code, name, major_code, major_name, places in rows:
        if not out or out[-1]["code"] != code:
            out.append({"code": code, "name": name, "majors": []})
        if major_code is not None:
            out[-1]["majors"].append({"code": major_code, "name": major_name, "places": places})
    return out
