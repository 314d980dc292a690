"""The filesystem payload store: atomic, durable puts whose directories appear only when needed."""

from __future__ import annotations

import errno
import fcntl
import gc
import hashlib
import os
from datetime import UTC, datetime

import pytest

from mailroom.ids import new_message_id
from mailroom.settings import load_settings
from mailroom.storage.payloads import chunk_key, filesystem
from mailroom.storage.payloads.factory import create_payload_store
from mailroom.storage.payloads.filesystem import FilesystemPayloadStore


@pytest.fixture
def synced(monkeypatch) -> list:
    calls: list = []
    real = filesystem._fsync_dir

    def record(path):
        calls.append(path)
        real(path)

    monkeypatch.setattr(filesystem, "_fsync_dir", record)
    return calls


def test_every_new_directory_is_made_durable_in_its_parent(tmp_path, synced):
    store = FilesystemPayloadStore(tmp_path)
    message_id = new_message_id(datetime(2026, 1, 1, tzinfo=UTC))
    store.put(chunk_key(message_id, 1), [b"one"])
    day, message = (
        store.root / "objects" / message_id[:8],
        store.root / "objects" / message_id[:8] / message_id,
    )
    # the new day directory's entry (in objects/), the message directory's (in the day directory)
    # and the file's (in the message directory)
    assert set(synced) == {store.root / "objects", day, message}
    synced.clear()
    store.put(chunk_key(message_id, 2), [b"two"])
    assert synced == [message]  # nothing new above it


def test_no_directory_appears_until_the_body_has_streamed(tmp_path):
    store = FilesystemPayloadStore(tmp_path)
    message_id = new_message_id(datetime(2026, 1, 1, tzinfo=UTC))

    def body():
        assert list(store.message_ids()) == []
        yield b"bytes"

    store.put(chunk_key(message_id, 1), body())
    assert list(store.message_ids()) == [message_id]


def _body(size: int, piece: int = 100_003) -> list[bytes]:
    """``size`` bytes of varied content in pieces that never line up with the write buffers."""
    data = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
    return [data[at : min(at + piece, size)] for at in range(0, size, piece)]


def _new_key() -> str:
    return chunk_key(new_message_id(datetime(2026, 1, 1, tzinfo=UTC)), 1)


def _stored(path, size: int, *, direct_io: bool = True) -> tuple[FilesystemPayloadStore, str, list[bytes]]:
    """A store at ``path`` holding one payload of ``size`` bytes: (store, its key, the pieces put)."""
    store = FilesystemPayloadStore(path, direct_io=direct_io)
    key, body = _new_key(), _body(size)
    store.put(key, body)
    return store, key, body


def test_write_buffers_are_used_again_and_carry_nothing_over(tmp_path, monkeypatch):
    store = FilesystemPayloadStore(tmp_path)
    first, second = _new_key(), _new_key()
    store.put(first, [b"a" * (3 * filesystem.BUFFER + 5)])
    kept = filesystem._BUFFER_PAIRS.newest()  # the pair the first upload used, back for the next
    taken: list[object] = []
    take = filesystem._BUFFER_PAIRS.take

    def spy() -> object:
        taken.append(take())
        return taken[-1]

    monkeypatch.setattr(filesystem._BUFFER_PAIRS, "take", spy)
    store.put(second, [b"b" * (filesystem.BUFFER + 7)])
    assert taken == [kept]
    assert b"".join(store.open(second)) == b"b" * (filesystem.BUFFER + 7)
    assert filesystem._BUFFER_PAIRS.kept() <= filesystem._BUFFER_PAIRS._keep


def _skip_without_direct_io(path) -> None:
    probe = path / "probe"
    probe.touch()
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_DIRECT))
    except OSError:
        pytest.skip("this filesystem refuses O_DIRECT")


def _is_direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


def _fail(monkeypatch, name: str, when, error: int) -> list[int]:
    """Make ``os.<name>`` (pwrite or preadv) raise ``error`` on the calls ``when(fd, offset)``
    picks; returns the offsets refused so far."""
    real = getattr(os, name)
    refused: list[int] = []

    def patched(fd, data, offset):
        if when(fd, offset):
            refused.append(offset)
            raise OSError(error, os.strerror(error))
        return real(fd, data, offset)

    monkeypatch.setattr(os, name, patched)
    return refused


SIZES = [0, 1, filesystem.ALIGN - 1, filesystem.BUFFER, filesystem.BUFFER + 1, 3 * filesystem.BUFFER + 12_345]


@pytest.mark.parametrize("direct_io", [True, False], ids=["direct", "page-cache"])
@pytest.mark.parametrize("size", SIZES)
def test_every_size_round_trips_whole_with_its_size_and_sha256(tmp_path, direct_io, size):
    store = FilesystemPayloadStore(tmp_path, direct_io=direct_io)
    key = _new_key()
    body = _body(size)
    stored = store.put(key, iter(body))
    expected = b"".join(body)
    assert (stored.size, stored.sha256) == (size, hashlib.sha256(expected).hexdigest())
    assert b"".join(store.open(key)) == expected
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.fixture
def writes(monkeypatch) -> list[tuple[bool, int, int]]:
    """Every write the store makes: (through an O_DIRECT descriptor?, offset, length)."""
    calls: list[tuple[bool, int, int]] = []
    real = os.pwrite

    def record(fd, data, offset):
        calls.append((_is_direct(fd), offset, len(data)))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", record)
    return calls


def test_full_buffers_go_past_the_page_cache_and_the_rest_through_it(tmp_path, writes):
    _skip_without_direct_io(tmp_path)
    store = FilesystemPayloadStore(tmp_path)
    buffer = filesystem.BUFFER
    store.put(_new_key(), _body(2 * buffer + 10))
    assert sorted(writes) == [(False, 2 * buffer, 10), (True, 0, buffer), (True, buffer, buffer)]


def test_with_direct_io_off_no_write_is_direct(tmp_path, writes):
    store = FilesystemPayloadStore(tmp_path, direct_io=False)
    store.put(_new_key(), _body(3 * filesystem.BUFFER))
    assert [direct for direct, _offset, _length in writes] == [False] * 3


def test_the_setting_turns_direct_io_off(tmp_path, writes):
    store = create_payload_store(load_settings({"MAILROOM_PAYLOAD_DIRECT_IO": "false"}, data_dir=tmp_path))
    store.put(_new_key(), _body(3 * filesystem.BUFFER))
    assert [direct for direct, _offset, _length in writes] == [False] * 3


def test_a_direct_write_the_filesystem_refuses_is_made_through_the_page_cache(tmp_path, monkeypatch):
    """Some filesystems open with O_DIRECT and then refuse the write (EINVAL): the same bytes
    go through the ordinary descriptor, and so does every later write."""
    refused = _fail(monkeypatch, "pwrite", lambda fd, _offset: _is_direct(fd), errno.EINVAL)
    _skip_without_direct_io(tmp_path)
    store = FilesystemPayloadStore(tmp_path)
    key = _new_key()
    body = _body(3 * filesystem.BUFFER + 7)
    assert store.put(key, body).size == 3 * filesystem.BUFFER + 7
    assert b"".join(store.open(key)) == b"".join(body)
    assert refused == [0]


def test_a_failed_write_fails_the_put_and_leaves_nothing(tmp_path, monkeypatch):
    _fail(monkeypatch, "pwrite", lambda _fd, offset: offset >= filesystem.BUFFER, errno.ENOSPC)
    store = FilesystemPayloadStore(tmp_path)
    key = _new_key()
    with pytest.raises(OSError, match="No space"):
        store.put(key, _body(4 * filesystem.BUFFER))
    assert list(store.message_ids()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_downloads_read_past_the_page_cache(tmp_path, monkeypatch):
    _skip_without_direct_io(tmp_path)
    store, key, body = _stored(tmp_path, 2 * filesystem.DIRECT_READ + 5)
    reads: list[bool] = []
    real = os.preadv

    def record(fd, buffers, offset):
        reads.append(_is_direct(fd))
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", record)
    assert b"".join(store.open(key)) == b"".join(body)
    assert reads == [True, True, True]  # two whole buffers, then the 5-byte end


def test_a_direct_read_the_filesystem_refuses_goes_on_the_ordinary_way(tmp_path, monkeypatch):
    _skip_without_direct_io(tmp_path)
    store, key, body = _stored(tmp_path, 3 * filesystem.DIRECT_READ + 12_345)
    _fail(monkeypatch, "preadv", lambda _fd, offset: offset >= filesystem.DIRECT_READ, errno.EINVAL)
    assert b"".join(store.open(key)) == b"".join(body)


@pytest.mark.parametrize("direct_io", [True, False], ids=["direct", "page-cache"])
def test_a_payload_opened_and_never_read_leaves_no_descriptor_open(tmp_path, direct_io):
    """A response abandoned before its body starts drops the opened payload unread."""
    store, key, _ = _stored(tmp_path, 10_000, direct_io=direct_io)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        opened = store.open(key)
        del opened
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize(("size", "opened"), [(filesystem.BUFFER - 1, 0), (filesystem.BUFFER, 1)])
def test_a_direct_descriptor_is_opened_only_once_a_buffer_fills(tmp_path, monkeypatch, size, opened):
    _skip_without_direct_io(tmp_path)
    real_open, direct_opens = os.open, []

    def recording_open(path, flags, *args):
        if flags & os.O_DIRECT and flags & os.O_WRONLY:
            direct_opens.append(path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(filesystem.os, "open", recording_open)
    store = FilesystemPayloadStore(tmp_path / "store")
    key = _new_key()
    stored = store.put(key, _body(size))
    assert len(direct_opens) == opened
    assert stored.size == size
    assert b"".join(store.open(key)) == b"".join(_body(size))
