"""Payloads as files: temp file + fsync + rename, directories fsynced, paths never from clients.

A payload is gathered into two aligned buffers (``BUFFER`` each): while a writer thread writes
one, the other fills. On Linux the full buffers go to the disk with ``O_DIRECT``, past the page
cache: on this project's benchmark machine the kernel spends about 1.7 s of CPU per GiB copying
into the page cache and writing it back, against well under 0.1 s for direct writes, and the
fsync before the 202 then has almost nothing left to wait for. The last, partial buffer goes
through the page cache (no padding, no truncation), and one fsync covers both. Downloads read
with ``O_DIRECT`` too, 1 MiB at a time: reading blocks written past the cache through it cost
the same VM's kernel 3.4 s of CPU per GiB. Where the filesystem refuses ``O_DIRECT`` (tmpfs,
some network filesystems), or with ``MAILROOM_PAYLOAD_DIRECT_IO=false``, every read and write
is an ordinary one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from mailroom.ids import is_generated_id
from mailroom.spares import Spares
from mailroom.storage.payloads.base import InvalidKey, PayloadMissing, StoredPayload, check_key
from mailroom.storage.private import DIR_MODE, make_private_dir

READ_SIZE = 256 * 1024
#: Each of a payload's two write buffers. Measured with bench/ (1 GiB in 75 MiB chunks): 1 MiB
#: buffers gave 310-400 MB/s, 2 MiB 390-500 MB/s, 4 MiB no more.
BUFFER = 2 * 1024 * 1024
#: O_DIRECT wants buffer addresses, lengths and file offsets in multiples of the block size.
ALIGN = 4096
#: Each read of a download made with O_DIRECT (measured: 512 KiB gave 350-400 MB/s, 1 MiB 540-610).
DIRECT_READ = 1024 * 1024
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
#: Threads that write full buffers, shared by every upload; an upload has at most one write
#: in flight, so a busy pool slows uploads down but never holds more memory.
_WRITERS = ThreadPoolExecutor(4, thread_name_prefix="mailroom-payload-write")
#: Write-buffer pairs kept for the next upload (fresh ones cost a page fault every 4 KiB). Private
#: mappings, not shared: the default (shared) mapping is slower to fault in and to free.
_BUFFER_PAIRS: Spares[mmap.mmap] = Spares(
    lambda: mmap.mmap(-1, 2 * BUFFER, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS),
    keep=2,
    drop=mmap.mmap.close,
)


class FilesystemPayloadStore:
    def __init__(self, root: Path, *, direct_io: bool = True) -> None:
        self.root = root.resolve()
        self._direct_io = direct_io and bool(_O_DIRECT)
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        make_private_dir(self._objects)  # 0700, as every directory made below (upload files: 0600)
        make_private_dir(self._tmp)

    def _path(self, key: str) -> Path:
        # check_key admits only digits, hex, "_" and "-" around one "/": no "..", no absolute
        # path, no link can be named, so the join stays under the (resolved) objects root.
        message_id, _, chunk = check_key(key).partition("/")
        return self._objects / message_id[:8] / message_id / chunk

    def put(self, key: str, data: Iterable[bytes]) -> StoredPayload:
        final = self._path(key)
        fd, tmp_name = _mkstemp(self._tmp)
        try:
            with _PayloadFile(fd, tmp_name, direct=self._direct_io) as out:
                for piece in data:
                    out.write(piece)
                size, sha256 = out.finish()
            # Directories are made only now, after the body: a message directory without a
            # database row is an orphan to the sweep, and an upload may stream for a long time.
            self._make_dirs(final.parent)
            os.replace(tmp_name, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(final.parent)
        return StoredPayload(size=size, sha256=sha256)

    def _make_dirs(self, path: Path) -> None:
        """Create ``path`` and any missing parent under objects/, each new entry fsynced."""
        if path == self._objects or path.is_dir():
            return
        self._make_dirs(path.parent)
        with contextlib.suppress(FileExistsError):  # a concurrent put may be making it too
            path.mkdir(mode=DIR_MODE)
        _fsync_dir(path.parent)

    def open(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        if self._direct_io:
            try:
                # a file object, not a bare descriptor: closed when collected even if the
                # generator below never starts (a response abandoned before its body)
                raw = open(path, "rb", buffering=0, opener=_open_direct)  # noqa: SIM115
            except FileNotFoundError:
                raise PayloadMissing(key) from None
            except OSError:  # refused by this filesystem: the ordinary way below
                pass
            else:
                return _read_direct(raw, path)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise PayloadMissing(key) from None
        return _read(handle)

    def open_range(self, key: str, start: int, end: int | None) -> Iterator[bytes]:
        """A range by ordinary buffered reads from ``start`` (the direct reads' alignment is
        not worth it for a part of a file)."""
        try:
            handle = open(self._path(key), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise PayloadMissing(key) from None
        return _read_range(handle, start, end)

    def presign_get(self, key: str, *, expires_in: int, file_name: str, content_type: str) -> str | None:
        return None  # Mailroom signs and serves links to payload files itself

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


class _PayloadFile:
    """Writes a new file (open as ``fd``, named ``path``) and hashes it; ``finish`` makes it durable."""

    def __init__(self, fd: int, path: str, *, direct: bool) -> None:
        self._fd = fd
        self._path = path
        self._want_direct = direct  # opened at the first full buffer: most payloads never fill one
        self._direct: int | None = None
        self._memory = _BUFFER_PAIRS.take()  # page-aligned, as O_DIRECT needs
        whole = memoryview(self._memory)
        self._buffers = (whole[:BUFFER], whole[BUFFER:])
        whole.release()
        self._filling = 0  # which buffer
        self._fill = 0  # bytes in it
        self._offset = 0  # where in the file it goes
        self._writing: Future[None] | None = None
        self._digest = hashlib.sha256()

    def __enter__(self) -> _PayloadFile:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._writing is not None:
                wait([self._writing])  # its error, if any, was raised by finish() or is moot
        finally:
            for buffer in self._buffers:
                buffer.release()
            _BUFFER_PAIRS.give_back(self._memory)
            if self._direct is not None:
                os.close(self._direct)
            os.close(self._fd)

    def write(self, piece: bytes) -> None:
        self._digest.update(piece)
        rest = memoryview(piece)
        while rest:
            buffer = self._buffers[self._filling]
            taken = rest[: BUFFER - self._fill]
            buffer[self._fill : self._fill + len(taken)] = taken
            self._fill += len(taken)
            rest = rest[len(taken) :]
            if self._fill == BUFFER:
                self._wait_for_writer()
                self._writing = _WRITERS.submit(self._write_full, buffer, self._offset)
                self._offset += BUFFER
                self._filling ^= 1
                self._fill = 0

    def finish(self) -> tuple[int, str]:
        """Write the rest and fsync; the file's size and SHA-256."""
        self._wait_for_writer()
        _pwrite_all(self._fd, self._buffers[self._filling][: self._fill], self._offset)
        os.fsync(self._fd)
        return self._offset + self._fill, self._digest.hexdigest()

    def _wait_for_writer(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def _write_full(self, buffer: memoryview, offset: int) -> None:
        """In a writer thread (one at a time per file). A direct write the filesystem refuses is
        made again, and every later one made, through the ordinary file descriptor."""
        if self._want_direct:
            self._want_direct = False
            with contextlib.suppress(OSError):  # refused by this filesystem: ordinary writes
                self._direct = os.open(self._path, os.O_WRONLY | os.O_CLOEXEC | _O_DIRECT)
        if self._direct is not None:
            try:
                _pwrite_all(self._direct, buffer, offset)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                os.close(self._direct)
                self._direct = None
        _pwrite_all(self._fd, buffer, offset)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def _read(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while piece := handle.read(READ_SIZE):
            yield piece


def _read_range(handle: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    with handle:
        handle.seek(start)
        left = None if end is None else max(0, end - start)
        while left is None or left > 0:
            piece = handle.read(READ_SIZE if left is None else min(READ_SIZE, left))
            if not piece:
                return
            if left is not None:
                left -= len(piece)
            yield piece


def _open_direct(path: str, flags: int) -> int:
    return os.open(path, flags | _O_DIRECT)


def _read_direct(raw: BinaryIO, path: Path) -> Iterator[bytes]:
    """Read with O_DIRECT into one aligned buffer, each piece a copy of it. The kernel's own
    reading of blocks just written past its cache was slow on the benchmark VM and took much of
    its CPU; direct reads of 1 MiB took little. A read the filesystem refuses (EINVAL) goes on
    the ordinary way from where it stopped."""
    buffer = mmap.mmap(-1, DIRECT_READ)
    offset = 0
    try:
        while True:
            try:
                count = os.preadv(raw.fileno(), [buffer], offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    while piece := handle.read(READ_SIZE):
                        yield piece
                return
            if not count:
                return
            yield buffer[:count]
            offset += count
            if count % ALIGN:  # a short read ends at the end of the file
                return
    finally:
        buffer.close()
        raw.close()


def _mkstemp(directory: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=directory, prefix="upload-")  # mode 0600, kept by the rename


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
