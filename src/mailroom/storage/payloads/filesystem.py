"""Payloads as files: temp file + fsync + rename, directories fsynced, paths never from clients."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from mailroom.ids import is_generated_id
from mailroom.storage.payloads.base import InvalidKey, PayloadMissing, StoredPayload, check_key

READ_SIZE = 256 * 1024


class FilesystemPayloadStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # check_key admits only digits, hex, "_" and "-" around one "/": no "..", no absolute
        # path, no link can be named, so the join stays under the (resolved) objects root.
        message_id, _, chunk = check_key(key).partition("/")
        return self._objects / message_id[:8] / message_id / chunk

    def put(self, key: str, data: Iterable[bytes]) -> StoredPayload:
        final = self._path(key)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = _mkstemp(self._tmp)
        try:
            with os.fdopen(fd, "wb") as handle:
                for piece in data:
                    handle.write(piece)
                    digest.update(piece)
                    size += len(piece)
                handle.flush()
                os.fsync(handle.fileno())
            # Directories are made only now, after the body: a message directory without a
            # database row is an orphan to the sweep, and an upload may stream for a long time.
            self._make_dirs(final.parent)
            os.replace(tmp_name, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(final.parent)
        return StoredPayload(size=size, sha256=digest.hexdigest())

    def _make_dirs(self, path: Path) -> None:
        """Create ``path`` and any missing parent under objects/, each new entry fsynced."""
        if path == self._objects or path.is_dir():
            return
        self._make_dirs(path.parent)
        with contextlib.suppress(FileExistsError):  # a concurrent put may be making it too
            path.mkdir()
        _fsync_dir(path.parent)

    def open(self, key: str) -> Iterator[bytes]:
        try:
            handle = open(self._path(key), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise PayloadMissing(key) from None
        return _read(handle)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def delete_message(self, message_id: str) -> None:
        if not is_generated_id(message_id):
            raise InvalidKey(message_id)
        shutil.rmtree(self._objects / message_id[:8] / message_id, ignore_errors=True)

    def message_ids(self) -> Iterator[str]:
        for bucket in sorted(self._objects.iterdir()):
            for entry in sorted(bucket.iterdir()) if bucket.is_dir() else ():
                if is_generated_id(entry.name):
                    yield entry.name

    def last_written(self, message_id: str) -> datetime | None:
        if not is_generated_id(message_id):
            raise InvalidKey(message_id)
        try:
            # a file renamed into the message's directory updates the directory's mtime
            stamp = (self._objects / message_id[:8] / message_id).stat().st_mtime
        except FileNotFoundError:
            return None
        return datetime.fromtimestamp(stamp, UTC)

    def remove_stale_uploads(self, older_than: timedelta) -> int:
        """Temp files left by a crash mid-upload; never visible, removed here."""
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for entry in self._tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
        return removed


def _read(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while piece := handle.read(READ_SIZE):
            yield piece


def _mkstemp(directory: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=directory, prefix="upload-")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
