"""The storage adapters: keys are checked, writes are atomic, both backends behave alike."""

from __future__ import annotations

import stat

import pytest

from gzsb.adapters.storage import LocalStorage, MemoryStorage, StorageError, make_storage


@pytest.fixture(params=["local", "memory"])
def storage(request, tmp_path):
    return make_storage(request.param, tmp_path / "uploads")


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
    with pytest.raises(ValueError, match="unknown storage backend 's3'; known: local, memory"):
        make_storage("s3", tmp_path)
    assert isinstance(make_storage("memory", tmp_path), MemoryStorage)
