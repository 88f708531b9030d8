"""The storage adapters: keys are checked, writes are atomic, both backends behave alike."""

from __future__ import annotations

import stat

import pytest
from sqlalchemy import create_engine

from gzsb.adapters.storage import DatabaseStorage, LocalStorage, MemoryStorage, StorageError, make_storage
from gzsb.models import StoredFile


@pytest.fixture(params=["local", "memory", "database"])
def storage(request, tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'files.sqlite3'}")
    StoredFile.__table__.create(engine)
    return make_storage(request.param, tmp_path / "uploads", engine)


def test_put_get_delete_round_trip(storage) -> None:
    storage.put("photo/abc/0123.jpg", b"\xff\xd8\xffdata")
    assert storage.exists("photo/abc/0123.jpg")
    assert storage.get("photo/abc/0123.jpg") == b"\xff\xd8\xffdata"
    assert storage.delete("photo/abc/0123.jpg") is True
    assert storage.delete("photo/abc/0123.jpg") is False
    assert not storage.exists("photo/abc/0123.jpg")
    with pytest.raises(StorageError, match="no stored file"):
        storage.get("photo/abc/0123.jpg")


@pytest.mark.parametrize("key", ["../etc/passwd", "/etc/passwd", "a/../../b", "A/B.jpg", "a//b", "", "a/b c.jpg"])
def test_bad_keys_are_refused(storage, key) -> None:
    with pytest.raises(StorageError, match="invalid storage key"):
        storage.put(key, b"x")
    with pytest.raises(StorageError):
        storage.get(key)


def test_local_files_are_private_and_leave_no_partial_file(tmp_path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("material/app/one.png", b"\x89PNG")
    path = tmp_path / "material" / "app" / "one.png"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["one.png"]


def test_unknown_backend_names_the_known_ones(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown storage backend 's3'; known: local, database, memory"):
        make_storage("s3", tmp_path)
    assert isinstance(make_storage("memory", tmp_path), MemoryStorage)
    with pytest.raises(ValueError, match="needs the app's engine"):
        make_storage("database", tmp_path)


def test_listing_takes_an_underscore_in_the_prefix_literally(storage) -> None:
    storage.put("id_card/a/one.jpg", b"1")
    storage.put("idxcard/a/two.jpg", b"2")  # would match "id_card/" if '_' were a LIKE wildcard
    storage.put("photo/a/three.jpg", b"3")
    assert [key for key, _ in storage.listing("id_card/")] == ["id_card/a/one.jpg"]


def test_a_rewrite_replaces_the_bytes(storage) -> None:
    storage.put("material/a/one.png", b"first")
    storage.put("material/a/one.png", b"second")
    assert storage.get("material/a/one.png") == b"second"
    assert isinstance(storage, (LocalStorage, MemoryStorage, DatabaseStorage))
