"""The filesystem payload store: atomic, durable puts whose directories appear only when needed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailroom.ids import new_message_id
from mailroom.storage.payloads import chunk_key, filesystem
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
