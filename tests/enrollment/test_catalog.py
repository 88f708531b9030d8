"""CSV imports of the catalogue and the 学籍/学历 registry; image checks; catalogue search."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from gzsb.bootstrap import vault
from gzsb.cli.demo import CATALOG_CSV, REGISTRY_CSV, REGISTRY_PHOTOS, demo_student, portrait_png, registry_csv_row
from gzsb.common.images import ImageProblem, clean_image
from gzsb.enrollment.catalog import FileProblem, import_catalog, search_catalog
from gzsb.enrollment.registry import import_registry
from gzsb.extensions import db
from gzsb.models import Institution, Major, RegistryRecord

HEADER = "institution_code,institution_name,major_code,major_name,places\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def count(model) -> int:  # type: ignore[no-untyped-def]
    return db.session.scalar(select(func.count()).select_from(model))


def png(color: str = "red", size: tuple[int, int] = (30, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


# ------------------------------------------------------------------------ catalogue


@pytest.mark.empty_catalogue
def test_catalog_import_keeps_good_rows_and_reports_bad_ones_by_line(app, tmp_path) -> None:
    path = write(
        tmp_path / "catalog.csv",
        HEADER
        + "10060,天津理工大学,080901,计算机科学与技术,80\n"  # line 2
        + "10060,天津理工大学,080902,软件工程,\n"  # line 3: places may be empty
        + ",天津商业大学,120203K,会计学,50\n"  # line 4: no institution code
        + "10069,天津商业大学,120203K,会计学,many\n"  # line 5: places not a number
        + "\n"  # line 6: blank lines are skipped
        + "10060,天津理工大学,080901,计算机科学与技术,70\n"  # line 7: repeats line 2
        + "10060,天津理工学院,080601,电气工程及其自动化,50\n"  # line 8: other name for 10060
        + "10069,天津商业大学,020301K,金融学,50\n",  # line 9
    )
    report = import_catalog(db.session, path)
    lines = [line for line, _ in report.problems]
    assert lines == [4, 5, 7, 8]
    messages = dict(report.problems)
    assert messages[4] == "institution_code is required"
    assert "places 'many'" in messages[5]
    assert "repeats line 2" in messages[7]
    assert "named '天津理工大学' on line 2" in messages[8]
    assert not report.ok and report.rows == 7 and report.good_rows == 3
    assert count(Institution) == 2 and count(Major) == 3
    soft = db.session.scalars(select(Major).where(Major.code == "080902")).one()
    assert soft.places == 0 and soft.institution.name == "天津理工大学"


@pytest.mark.empty_catalogue
def test_catalog_reimport_updates_and_never_duplicates(app, tmp_path) -> None:
    first = write(tmp_path / "a.csv", HEADER + "10060,天津理工大学,080901,计算机科学与技术,80\n")
    assert import_catalog(db.session, first).ok
    again = write(
        tmp_path / "b.csv",
        HEADER + "10060,天津理工大学,080901,计算机科学与技术（中外合作）,90\n10060,天津理工大学,080902,软件工程,40\n",
    )
    report = import_catalog(db.session, again)
    assert report.ok
    assert report.updated == {"major(s)": 1} and report.created == {"major(s)": 1}
    assert count(Institution) == 1 and count(Major) == 2
    major = db.session.scalars(select(Major).where(Major.code == "080901")).one()
    assert (major.name, major.places) == ("计算机科学与技术（中外合作）", 90)
    assert import_catalog(db.session, again).unchanged == {"institution(s)": 1, "major(s)": 2}
    assert count(Major) == 2


@pytest.mark.empty_catalogue
def test_catalog_accepts_chinese_headers_and_gb18030(app, tmp_path) -> None:
    path = write(
        tmp_path / "excel.csv",
        "院校代码,院校名称,专业代码,专业名称,招生计划\n10070,天津财经大学,120203K,会计学,80\n",
        "gb18030",
    )
    assert import_catalog(db.session, path).ok
    assert db.session.scalars(select(Institution.name)).one() == "天津财经大学"


@pytest.mark.empty_catalogue
def test_catalog_file_without_required_columns_imports_nothing(app, tmp_path) -> None:
    path = write(tmp_path / "bad.csv", "code,name\n10060,天津理工大学\n")
    with pytest.raises(FileProblem, match="missing column"):
        import_catalog(db.session, path)
    assert count(Institution) == 0


def test_shipped_catalog_is_clean_and_has_real_tianjin_institutions(app) -> None:
    report = import_catalog(db.session, CATALOG_CSV)
    assert report.ok, report.problems
    names = set(db.session.scalars(select(Institution.name)))
    assert {"天津理工大学", "天津商业大学", "天津城建大学", "天津职业技术师范大学", "天津农学院"} <= names
    assert {"天津中医药大学", "天津外国语大学", "天津师范大学", "天津科技大学", "天津财经大学"} <= names
    assert {"天津天狮学院", "天津仁爱学院"} <= names
    assert count(Major) > 60


def test_catalog_search_matches_every_word_in_names_and_codes(app) -> None:
    import_catalog(db.session, CATALOG_CSV)
    found = search_catalog(db.session, "理工 软件")
    assert [(r["institution_name"], r["major_name"]) for r in found] == [("天津理工大学", "软件工程")]
    assert {r["institution"] for r in search_catalog(db.session, "080901")} >= {"10060", "10066"}
    assert all(r["institution"] == "10792" for r in search_catalog(db.session, "", institution="10792"))
    assert search_catalog(db.session, "%") == []  # LIKE wildcards are taken literally


# ------------------------------------------------------------------------- registry

REGISTRY_HEADER = "id_number,name,school,major,level,study_form,graduation_year,photo\n"


def registry_line(index: int, **changes: str) -> str:
    row = registry_csv_row(demo_student(index))
    row.update(changes)
    return ",".join(row.values()) + "\n"


def test_registry_import_validates_row_by_row(app, tmp_path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "ok.png").write_bytes(png())
    (photos / "fake.png").write_bytes(b"GIF89a not really a png")
    (tmp_path / "outside.png").write_bytes(png())
    path = write(
        tmp_path / "registry.csv",
        REGISTRY_HEADER
        + registry_line(1, photo="ok.png")  # line 2
        + registry_line(2, id_number="120104200303030027")  # line 3: wrong check digit
        + registry_line(3, name="")  # line 4
        + registry_line(5, graduation_year="1975")  # line 5
        + registry_line(6, photo="missing.png")  # line 6
        + registry_line(7, photo="fake.png")  # line 7
        + registry_line(8, photo="../outside.png")  # line 8
        + registry_line(10, level="硕士")  # line 9
        + registry_line(1)  # line 10: same ID number again
        + registry_line(11),  # line 11
    )
    report = import_registry(db.session, vault(), path, photos, this_year=2026)
    messages = dict(report.problems)
    assert sorted(messages) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "wrong check digit" in messages[3] and "120104********0027" in messages[3]
    assert messages[4] == "name is required"
    assert "out of range 1990-2029" in messages[5]
    assert "not found" in messages[6]
    assert "not a JPEG or PNG" in messages[7]
    assert "plain file name" in messages[8]
    assert "level '硕士'" in messages[9]
    assert "repeats line 2" in messages[10]
    # Whole ID numbers never reach the report (it goes to the admin's terminal and logs).
    assert all(demo_student(2).id_number not in m for m in messages.values())
    assert count(RegistryRecord) == 2
    record = db.session.scalars(
        select(RegistryRecord).where(RegistryRecord.id_number_index == vault().index(demo_student(1).id_number))
    ).one()
    assert record.photo is not None and record.photo.startswith(b"\x89PNG")


def test_registry_reimport_updates_by_id_number_and_keeps_photo(app, tmp_path) -> None:
    (tmp_path / "p.png").write_bytes(png())
    first = write(tmp_path / "r1.csv", REGISTRY_HEADER + registry_line(1, photo="p.png") + registry_line(2))
    assert import_registry(db.session, vault(), first).ok  # photos default to the CSV's folder
    second = write(tmp_path / "r2.csv", REGISTRY_HEADER + registry_line(1, graduation_year="2026"))
    report = import_registry(db.session, vault(), second)
    assert report.ok and report.updated == {"record(s)": 1}
    assert count(RegistryRecord) == 2
    key = vault().index(demo_student(1).id_number)
    record = db.session.scalars(select(RegistryRecord).where(RegistryRecord.id_number_index == key)).one()
    assert record.graduation_year == 2026 and record.photo is not None


def test_demo_registry_data_imports_cleanly(app) -> None:
    report = import_registry(db.session, vault(), REGISTRY_CSV, REGISTRY_PHOTOS)
    assert report.ok, report.problems
    assert count(RegistryRecord) == report.rows
    assert db.session.scalars(select(func.count()).where(RegistryRecord.photo.is_(None))).one() == 0


# ------------------------------------------------------------------------- commands


@pytest.mark.empty_catalogue
def test_catalog_command_exit_codes_and_line_numbers(app, tmp_path) -> None:
    runner = app.test_cli_runner()
    good = write(tmp_path / "good.csv", HEADER + "10060,天津理工大学,080901,计算机科学与技术,80\n")
    result = runner.invoke(args=["catalog", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert "1 imported, 0 bad" in result.stdout
    bad = write(tmp_path / "bad.csv", HEADER + "10060,天津理工大学,080902,软件工程,40\n10060,,X,Y,1\n")
    result = runner.invoke(args=["catalog", "import", str(bad)])
    assert result.exit_code == 1
    assert "bad.csv:3: institution_name is required" in result.stderr
    assert count(Major) == 2  # the good row of the bad file was kept
    missing = write(tmp_path / "cols.csv", "a,b\n1,2\n")
    result = runner.invoke(args=["catalog", "import", str(missing)])
    assert result.exit_code == 1 and "nothing imported" in result.stderr


def test_registry_command_with_photo_folder(app, tmp_path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(png())
    path = write(
        tmp_path / "r.csv", REGISTRY_HEADER + registry_line(1, photo="a.png") + registry_line(2, photo="b.png")
    )
    result = app.test_cli_runner().invoke(args=["registry", "import", str(path), "--photos", str(photos)])
    assert result.exit_code == 1
    assert "r.csv:3: photo 'b.png' not found" in result.stderr
    assert "2 row(s), 1 imported, 1 bad" in result.stdout
    assert count(RegistryRecord) == 1


# --------------------------------------------------------------------------- images


def test_clean_image_checks_magic_bytes_pixels_and_reencodes() -> None:
    jpeg = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make; GPS positions live in the same block
    Image.new("RGB", (20, 20), "blue").save(jpeg, "JPEG", exif=exif.tobytes())
    assert b"PhoneMaker" in jpeg.getvalue()
    cleaned, kind = clean_image(jpeg.getvalue())
    assert kind == "jpeg" and cleaned.startswith(b"\xff\xd8\xff") and b"PhoneMaker" not in cleaned
    with pytest.raises(ImageProblem) as problem:
        clean_image(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    assert problem.value.chinese == "仅支持JPG或PNG格式的图片"
    with pytest.raises(ImageProblem, match="too large"):
        clean_image(png(size=(200, 200)), max_pixels=10_000)
    with pytest.raises(ImageProblem, match="cannot be decoded"):
        clean_image(png()[:40])
    assert portrait_png(1).startswith(b"\x89PNG")
