"""The payload store contract (``storage.payloads.base.PayloadStore``), held to every backend alike:
the filesystem store on a temp dir and the S3 store over real HTTP to moto's server."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mailroom.ids import new_message_id
from mailroom.storage.payloads import PayloadMissing, PayloadStore, chunk_key, filesystem
from mailroom.storage.payloads.base import InvalidKey
from mailroom.storage.payloads.filesystem import FilesystemPayloadStore
from mailroom.storage.payloads.memory import MemoryPayloadStore

from ._streams import MIB, pieces


@dataclass
class Backend:
    store: PayloadStore
    #: leave behind what a process killed mid-upload leaves (never visible as a payload)
    abandon_upload: Callable[[str], None]
    #: uploads begun and not finished or removed
    open_uploads: Callable[[], int]


def _filesystem(tmp_path) -> Backend:
    store = FilesystemPayloadStore(tmp_path / "payloads")

    def abandon(key: str) -> None:
        fd, _name = filesystem._mkstemp(store.root / "tmp")
        os.write(fd, b"partial")
        os.close(fd)

    return Backend(store, abandon, lambda: len(list((store.root / "tmp").iterdir())))


def _s3(s3_server) -> Backend:
    store = s3_server.store(prefix="payloads")

    def abandon(key: str) -> None:
        object_key = store.prefix + key
        created = store.client.create_multipart_upload(Bucket=store.bucket, Key=object_key)
        store.client.upload_part(
            Bucket=store.bucket, Key=object_key, UploadId=created["UploadId"], PartNumber=1, Body=b"partial"
        )

    return Backend(store, abandon, lambda: len(s3_server.open_uploads(store.bucket)))


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request, tmp_path) -> Backend:
    if request.param == "filesystem":
        return _filesystem(tmp_path)
    return _s3(request.getfixturevalue("s3_server"))


@pytest.fixture
def store(backend) -> PayloadStore:
    return backend.store


def message_id(at: datetime | None = None) -> str:
    return new_message_id(at or datetime.now(UTC))


def read(store: PayloadStore, key: str) -> bytes:
    return b"".join(store.open(key))


def test_round_trip_with_size_and_sha256(store):
    key = chunk_key(message_id(), 1)
    stored = store.put(key, [b"hello", b" ", b"world"])
    assert (stored.size, stored.sha256) == (11, hashlib.sha256(b"hello world").hexdigest())
    assert read(store, key) == b"hello world"


def test_empty_payload(store):
    key = chunk_key(message_id(), 1)
    assert store.put(key, []).size == 0
    assert read(store, key) == b""


def test_large_payload_streams_in_and_out_in_pieces(store):
    key = chunk_key(message_id(), 1)
    expected = hashlib.sha256()
    for piece in pieces(12 * MIB):
        expected.update(piece)
    stored = store.put(key, pieces(12 * MIB))
    assert (stored.size, stored.sha256) == (12 * MIB, expected.hexdigest())
    got = hashlib.sha256()
    count = 0
    for piece in store.open(key):
        got.update(piece)
        count += 1
    assert got.hexdigest() == expected.hexdigest()
    assert count > 1


def _reused(count: int, size: int) -> Iterator[bytearray]:
    """``count`` pieces in one buffer, rewritten for each (as a request body taken from the socket)."""
    buffer = bytearray(size)
    for n in range(count):
        buffer[:] = bytes([n + 1]) * size
        yield buffer


@pytest.mark.parametrize("store_kind", ["contract", "memory"])
def test_a_piece_may_be_reused_by_its_producer_once_the_next_is_asked_for(store, store_kind):
    store = MemoryPayloadStore() if store_kind == "memory" else store
    key = chunk_key(message_id(), 1)
    expected = b"".join(bytes([n + 1]) * 300_000 for n in range(8))
    stored = store.put(key, _reused(8, 300_000))
    assert stored.sha256 == hashlib.sha256(expected).hexdigest()
    assert read(store, key) == expected


def test_put_replaces_the_old_value(store):
    key = chunk_key(message_id(), 1)
    store.put(key, [b"old"])
    store.put(key, [b"new"])
    assert read(store, key) == b"new"


def test_a_put_whose_body_fails_leaves_nothing_behind(backend):
    """Raised in the middle of the body (a client hanging up, a size limit): the same exception
    comes out, no payload is visible and no partial upload is left open."""
    store = backend.store
    key = chunk_key(message_id(), 1)

    class Hangup(Exception):
        pass

    def body():
        yield from pieces(7 * MIB)  # more than one S3 part: a multipart upload has begun
        raise Hangup

    with pytest.raises(Hangup):
        store.put(key, body())
    with pytest.raises(PayloadMissing):
        store.open(key)
    assert list(store.message_ids()) == []
    assert backend.open_uploads() == 0


def test_missing_payload(store):
    with pytest.raises(PayloadMissing):
        store.open(chunk_key(message_id(), 1))


def test_delete_removes_one_payload_and_ignores_missing_ones(store):
    mid = message_id()
    first, second = chunk_key(mid, 1), chunk_key(mid, 2)
    store.put(first, [b"1"])
    store.put(second, [b"2"])
    store.delete(first)
    store.delete(first)
    store.delete(chunk_key(message_id(), 1))
    with pytest.raises(PayloadMissing):
        store.open(first)
    assert read(store, second) == b"2"


def test_delete_message_removes_every_chunk_of_that_message_only(store):
    doomed, kept = message_id(), message_id()
    doomed_keys = [chunk_key(doomed, n) for n in (1, 2, 3)]
    for number, key in enumerate(doomed_keys, 1):
        store.put(key, [b"chunk %d" % number])
    store.put(chunk_key(kept, 1), [b"kept"])
    store.delete_message(doomed)
    store.delete_message(doomed)  # nothing left: no error
    for key in doomed_keys:
        with pytest.raises(PayloadMissing):
            store.open(key)
    assert list(store.message_ids()) == [kept]


def test_message_ids_lists_each_message_with_payloads_once(store):
    assert list(store.message_ids()) == []
    older = message_id(datetime(2026, 1, 1, tzinfo=UTC))
    newer = message_id(datetime(2026, 1, 2, tzinfo=UTC))
    for key in (chunk_key(newer, 1), chunk_key(older, 1), chunk_key(older, 2)):
        store.put(key, [b"x"])
    assert sorted(store.message_ids()) == [older, newer]


def test_last_written_is_when_the_newest_payload_was_stored(store):
    mid = message_id()
    assert store.last_written(mid) is None
    before = datetime.now(UTC)
    store.put(chunk_key(mid, 1), [b"x"])
    after = datetime.now(UTC)
    written = store.last_written(mid)
    assert written is not None
    assert written.utcoffset() == timedelta(0)
    # S3 keeps whole seconds
    assert before - timedelta(seconds=1) <= written <= after + timedelta(seconds=1)


def test_keys_not_built_by_the_server_are_refused(store):
    for key in ("../etc/passwd", "/abs", "20260101000000000000_ABCDEF/1-x", "x" * 40, ""):
        with pytest.raises(InvalidKey):
            store.put(key, [b"x"])
        with pytest.raises(InvalidKey):
            store.open(key)
        with pytest.raises(InvalidKey):
            store.delete(key)
    for bad_id in ("..", "20260101000000000000_ABCDEF/..", ""):
        with pytest.raises(InvalidKey):
            store.delete_message(bad_id)
        with pytest.raises(InvalidKey):
            store.last_written(bad_id)


def test_an_upload_cut_off_by_a_crash_is_removed_once_stale(backend):
    store = backend.store
    key = chunk_key(message_id(), 1)
    backend.abandon_upload(key)
    assert backend.open_uploads() == 1
    assert list(store.message_ids()) == []  # never visible
    with pytest.raises(PayloadMissing):
        store.open(key)
    # moto reports every upload as begun in 2010, so "recent" here means decades
    assert store.remove_stale_uploads(timedelta(days=365 * 50)) == 0
    assert backend.open_uploads() == 1
    time.sleep(0.01)  # the filesystem compares modification times
    assert store.remove_stale_uploads(timedelta(0)) == 1
    assert backend.open_uploads() == 0


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, None),
        (0, 10),
        (5, 3 * 1024 * 1024 + 7),
        (3 * 1024 * 1024, None),
        (100, 100),
        (4 * 1024 * 1024, None),
    ],
)
def test_open_range_streams_the_bytes_asked_for(store, start, end):
    data = os.urandom(3 * 1024 * 1024 + 77)  # more than one read piece
    key = chunk_key(message_id(), 1)
    store.put(key, [data])
    assert b"".join(store.open_range(key, start, end)) == data[start:end]


def test_open_range_of_a_missing_payload(store):
    with pytest.raises(PayloadMissing):
        b"".join(store.open_range(chunk_key(message_id(), 1), 0, 10))


def test_a_presigned_url_downloads_the_object_named_or_none_is_offered(store):
    key = chunk_key(message_id(), 1)
    store.put(key, [b"presigned bytes"])
    url = store.presign_get(key, expires_in=60, file_name='résumé "1".pdf', content_type="application/pdf")
    if isinstance(store, FilesystemPayloadStore):
        assert url is None
        return
    assert url is not None
    # SigV4 (AWS in most regions and MinIO refuse SigV2 presigned URLs), for the time asked
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    assert "X-Amz-Expires=60" in url
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b"presigned bytes"
    assert response.headers["content-type"] == "application/pdf"
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.pdf" in response.headers["content-disposition"]
