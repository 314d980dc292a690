"""What the S3 store adds to the contract: one PutObject or a multipart upload with one part in
memory, keys under the configured prefix only, nothing sent for a key the server did not build."""

from __future__ import annotations

import hashlib
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from mailroom.ids import new_message_id
from mailroom.settings import S3_MIN_PART_SIZE
from mailroom.storage.payloads import PayloadMissing, chunk_key
from mailroom.storage.payloads.base import InvalidKey
from mailroom.storage.payloads.s3 import S3PayloadStore

from ._streams import MIB, pieces

pytestmark = pytest.mark.s3

PART = S3_MIN_PART_SIZE


def message_id() -> str:
    return new_message_id(datetime.now(UTC))


@pytest.fixture
def store(s3_server) -> S3PayloadStore:
    return s3_server.store(prefix="mailroom", part_size=PART)


@pytest.fixture
def calls(store) -> list[str]:
    """Names of the S3 operations the store's client makes from now on."""
    made: list[str] = []

    def record(model, **_kwargs):
        made.append(model.name)

    store.client.meta.events.register("before-call.s3", record)
    yield made
    store.client.meta.events.unregister("before-call.s3", record)


def test_a_payload_of_at_most_one_part_is_one_put_object(store, calls):
    key = chunk_key(message_id(), 1)
    store.put(key, pieces(PART))
    assert calls == ["PutObject"]


def test_a_larger_payload_is_a_multipart_upload_of_whole_parts(store, s3_server, calls):
    key = chunk_key(message_id(), 1)
    stored = store.put(key, pieces(2 * PART + 1))
    assert calls == [
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "UploadPart",
        "CompleteMultipartUpload",
    ]
    assert stored.size == 2 * PART + 1
    head = s3_server.client.head_object(Bucket=store.bucket, Key=f"mailroom/{key}", PartNumber=1)
    assert head["ContentLength"] == PART


def test_a_piece_larger_than_a_part_is_split(store):
    key = chunk_key(message_id(), 1)
    body = bytes(range(256)) * (3 * PART // 256 + 7)
    stored = store.put(key, [body])
    assert stored.sha256 == hashlib.sha256(body).hexdigest()
    assert b"".join(store.open(key)) == body


def test_memory_stays_at_about_one_part_both_ways(store):
    key = chunk_key(message_id(), 1)
    tracemalloc.start()
    try:
        store.put(key, pieces(12 * MIB))
        _current, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _piece in store.open(key):
            pass
        _current, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert upload_peak < 1.3 * PART, f"upload peak {upload_peak / MIB:.1f} MiB"
    assert download_peak < 2 * MIB, f"download peak {download_peak / MIB:.1f} MiB"


def test_objects_live_under_the_prefix(store, s3_server):
    key = chunk_key(message_id(), 1)
    store.put(key, [b"x"])
    assert s3_server.keys(store.bucket) == [f"mailroom/{key}"]


@pytest.mark.parametrize("prefix", ["a", "/a/", "a/"])
def test_prefix_is_normalised(s3_server, prefix):
    assert s3_server.store(bucket="unused", prefix=prefix).prefix == "a/"


def test_stores_with_other_prefixes_in_one_bucket_do_not_see_each_other(s3_server):
    bucket = s3_server.new_bucket()
    ours, theirs = (
        s3_server.store(bucket=bucket, prefix="ours"),
        s3_server.store(bucket=bucket, prefix="theirs"),
    )
    root = s3_server.store(bucket=bucket)  # no prefix: sees "ours/" and "theirs/" as folders only
    mine, other = message_id(), message_id()
    their_key = chunk_key(other, 1)
    ours.put(chunk_key(mine, 1), [b"mine"])
    theirs.put(their_key, [b"other"])
    s3_server.client.put_object(Bucket=bucket, Key="ours/README", Body=b"not a payload")
    foreign = s3_server.client.create_multipart_upload(Bucket=bucket, Key="ours/backup.tar")
    theirs_upload = chunk_key(other, 2)
    s3_server.client.create_multipart_upload(Bucket=bucket, Key=f"theirs/{theirs_upload}")

    assert list(ours.message_ids()) == [mine]
    assert list(theirs.message_ids()) == [other]
    assert list(root.message_ids()) == []
    assert ours.remove_stale_uploads(timedelta(0)) == 0  # neither theirs nor a foreign key
    assert root.remove_stale_uploads(timedelta(0)) == 0
    ours.delete_message(other)
    assert b"".join(theirs.open(their_key)) == b"other"
    with pytest.raises(PayloadMissing):
        ours.open(their_key)
    assert sorted(s3_server.open_uploads(bucket)) == ["ours/backup.tar", f"theirs/{theirs_upload}"]
    assert theirs.remove_stale_uploads(timedelta(0)) == 1
    s3_server.client.abort_multipart_upload(
        Bucket=bucket, Key="ours/backup.tar", UploadId=foreign["UploadId"]
    )


def test_invalid_keys_are_refused_before_any_request(store, calls):
    with pytest.raises(InvalidKey):
        store.put("../../other-bucket/x", [b"x"])
    with pytest.raises(InvalidKey):
        store.open("x/../y")
    with pytest.raises(InvalidKey):
        store.delete("")
    with pytest.raises(InvalidKey):
        store.delete_message("*")
    with pytest.raises(InvalidKey):
        store.last_written("../")
    assert calls == []


def test_an_upload_in_progress_here_is_never_taken_for_a_stale_one(store, s3_server):
    """moto says every upload began in 2010; this process knows better about its own."""
    key = chunk_key(message_id(), 1)
    halfway, resume = threading.Event(), threading.Event()

    def body():
        yield from pieces(PART + 1)  # the first part is sent once this last byte arrives
        halfway.set()
        assert resume.wait(10)
        yield b"end"

    worker = threading.Thread(target=store.put, args=(key, body()))
    worker.start()
    try:
        assert halfway.wait(10)
        assert len(s3_server.open_uploads(store.bucket)) == 1
        assert store.remove_stale_uploads(timedelta(0)) == 0
    finally:
        resume.set()
        worker.join(10)
    assert sum(len(piece) for piece in store.open(key)) == PART + 4
    assert s3_server.open_uploads(store.bucket) == []


def test_storage_errors_other_than_a_missing_key_are_not_disguised(s3_server):
    store = s3_server.store(bucket="no-such-bucket-here")
    with pytest.raises(ClientError, match="NoSuchBucket"):
        store.open(chunk_key(message_id(), 1))
    with pytest.raises(ClientError, match="NoSuchBucket"):
        store.put(chunk_key(message_id(), 1), [b"x"])


def test_puts_from_many_threads_share_one_client(store):
    keys = [chunk_key(message_id(), n) for n in range(1, 9)]
    threads = [threading.Thread(target=store.put, args=(key, [key.encode()])) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [b"".join(store.open(key)) for key in keys] == [key.encode() for key in keys]
