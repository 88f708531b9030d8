"""Where uploaded files live: a small key → bytes interface.

The default keeps files in a local folder outside ``static/`` (nothing there is reachable
except through a checked route): right for one node. With several app nodes and workers,
``database`` keeps them in a table of the application database that all of them share
(``DatabaseStorage``); an object store could sit behind the same interface. Keys are
chosen by us (random names), never by a user, and are still checked so that a bad key can
never name a file outside the root.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from gzsb.models import StoredFile

log = logging.getLogger(__name__)

# "identity/<32 hex>/<32 hex>.jpg" and the like: lower-case words, digits, '-', '_', '.', '/'.
_KEY = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_-]+)*(\.[a-z0-9]+)?$")


class StorageError(LookupError):
    """A key is malformed or names nothing."""


class Storage(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> bool: ...

    def exists(self, key: str) -> bool: ...

    def listing(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """(key, last written, UTC) of the stored files whose key starts with ``prefix``."""
        ...


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key or len(key) > 200:
        raise StorageError(f"invalid storage key {key!r}")
    return key


class LocalStorage:
    """Files under one root folder, written atomically, readable only by this user."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Write then rename: a reader never sees half a file, a crash leaves no partial one.
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        with partial.open("wb") as handle:
            handle.write(data)
        os.chmod(partial, 0o600)
        partial.replace(path)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"no stored file {key!r}") from None

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        log.info("storage: deleted %s", key)
        return True

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def listing(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        folder = self.root / check_key(prefix.rstrip("/"))
        if not folder.is_dir():
            return
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                yield path.relative_to(self.root).as_posix(), datetime.fromtimestamp(path.stat().st_mtime, UTC)


class MemoryStorage:
    """For tests and benchmarks: the same interface, in a dict."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.written: dict[str, datetime] = {}

    def put(self, key: str, data: bytes) -> None:
        self.files[check_key(key)] = bytes(data)
        self.written[key] = datetime.now(UTC)

    def get(self, key: str) -> bytes:
        try:
            return self.files[check_key(key)]
        except KeyError:
            raise StorageError(f"no stored file {key!r}") from None

    def delete(self, key: str) -> bool:
        return self.files.pop(check_key(key), None) is not None

    def exists(self, key: str) -> bool:
        return check_key(key) in self.files

    def listing(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        for key in [k for k in self.files if k.startswith(prefix)]:
            yield key, self.written.get(key, datetime.now(UTC))


class DatabaseStorage:
    """Files as rows of ``stored_files`` (one bytea value each), through the app's engine.

    Each call is its own short transaction, independent of the request's session: like a
    file on disk, the bytes are there before the Upload row that names them commits (a crash
    in between leaves an orphan, which retention removes)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.table = StoredFile.__table__

    def put(self, key: str, data: bytes) -> None:
        key = check_key(key)
        with self.engine.begin() as conn:
            conn.execute(delete(self.table).where(self.table.c.key == key))
            conn.execute(
                insert(self.table).values(key=key, data=bytes(data), size=len(data), written_at=datetime.now(UTC))
            )

    def get(self, key: str) -> bytes:
        key = check_key(key)
        with self.engine.connect() as conn:
            data = conn.scalar(select(self.table.c.data).where(self.table.c.key == key))
        if data is None:
            raise StorageError(f"no stored file {key!r}")
        return bytes(data)

    def delete(self, key: str) -> bool:
        key = check_key(key)
        with self.engine.begin() as conn:
            removed = conn.execute(delete(self.table).where(self.table.c.key == key)).rowcount
        if removed:
            log.info("storage: deleted %s", key)
        return bool(removed)

    def exists(self, key: str) -> bool:
        key = check_key(key)
        with self.engine.connect() as conn:
            return conn.scalar(select(self.table.c.key).where(self.table.c.key == key)) is not None

    def listing(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        check_key(prefix.rstrip("/"))
        query = select(self.table.c.key, self.table.c.written_at).where(
            self.table.c.key.startswith(prefix, autoescape=True)  # '_' in a key is not a wildcard
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(self.table.c.key)).all()
        for key, written in rows:
            yield key, written if written.tzinfo else written.replace(tzinfo=UTC)  # SQLite drops the zone


def make_storage(backend: str, root: Path | str, engine: Engine | None = None) -> Storage:
    if backend == "local":
        return LocalStorage(root)
    if backend == "memory":
        return MemoryStorage()
    if backend == "database":
        if engine is None:
            raise ValueError("the database storage backend needs the app's engine")
        return DatabaseStorage(engine)
    raise ValueError(f"unknown storage backend {backend!r}; known: local, database, memory")
