"""Payloads in memory: for tests and demos only."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from mailroom.storage.payloads.base import PayloadMissing, StoredPayload, check_key


class MemoryPayloadStore:
    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._written: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: Iterable[bytes]) -> StoredPayload:
        body = b"".join([bytes(piece) for piece in data])  # a piece may be reused once the next is read
        with self._lock:
            self._data[check_key(key)] = body
            self._written[key.partition("/")[0]] = datetime.now(UTC)
        return StoredPayload(size=len(body), sha256=hashlib.sha256(body).hexdigest())

    def open(self, key: str) -> Iterator[bytes]:
        with self._lock:
            body = self._data.get(check_key(key))
        if body is None:
            raise PayloadMissing(key)
        return iter((body,))

    def open_range(self, key: str, start: int, end: int | None) -> Iterator[bytes]:
        with self._lock:
            body = self._data.get(check_key(key))
        if body is None:
            raise PayloadMissing(key)
        return iter((body[start:end],))

    def presign_get(self, key: str, *, expires_in: int, file_name: str, content_type: str) -> str | None:
        return None

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(check_key(key), None)

    def delete_message(self, message_id: str) -> None:
        with self._lock:
            for key in [k for k in self._data if k.startswith(message_id + "/")]:
                del self._data[key]

    def message_ids(self) -> Iterator[str]:
        with self._lock:
            ids = sorted({key.partition("/")[0] for key in self._data})
        return iter(ids)

    def last_written(self, message_id: str) -> datetime | None:
        with self._lock:
            return self._written.get(message_id)

    def remove_stale_uploads(self, older_than: timedelta) -> int:
        return 0
