"""The payload store interface. Keys are built only from server-generated ids."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import quote

from mailroom.ids import is_generated_id

_KEY = re.compile(r"^\d{20}_[0-9A-F]{6}/\d{1,6}-[0-9a-f]{16}$")


class PayloadMissing(LookupError):
    """The key has no payload (never stored, deleted or lost)."""


class InvalidKey(ValueError):
    """A key that this server could not have built: refused before touching storage."""


@dataclass(frozen=True)
class StoredPayload:
    size: int
    sha256: str


def chunk_key(message_id: str, chunk_no: int) -> str:
    """A fresh key for one upload of one chunk: ``{message_id}/{chunk_no}-{random}``.

    Every upload gets its own key, so a re-sent chunk never overwrites bytes a row points to.
    """
    if not is_generated_id(message_id) or not 0 < chunk_no < 1_000_000:
        raise InvalidKey(f"refusing payload key for {message_id!r}/{chunk_no!r}")
    return f"{message_id}/{chunk_no}-{secrets.token_hex(8)}"


def content_disposition(file_name: str) -> str:
    """``attachment`` with the name as RFC 6266 says: an ASCII fallback and the UTF-8 form."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in file_name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise InvalidKey(f"refusing payload key {key!r}")
    return key


class PayloadStore(Protocol):
    def put(self, key: str, data: Iterable[bytes]) -> StoredPayload:
        """Store all of ``data`` under ``key`` atomically and durably, replacing any old value.

        Either the whole payload is stored (and survives a crash once this returns) or nothing is.
        A piece of ``data`` (bytes or any bytes-like object) may be reused by its producer once
        the next one is asked for: a store copies what it keeps.
        """
        ...

    def open(self, key: str) -> Iterator[bytes]:
        """Stream the payload in pieces; raises PayloadMissing."""
        ...

    def open_range(self, key: str, start: int, end: int | None) -> Iterator[bytes]:
        """Stream bytes ``[start, end)`` of the payload (``end`` None: to its end); raises
        PayloadMissing."""
        ...

    def presign_get(self, key: str, *, expires_in: int, file_name: str, content_type: str) -> str | None:
        """A URL that downloads the payload without Mailroom, for ``expires_in`` seconds, named
        ``file_name``; None for a store that cannot make one (Mailroom then serves the bytes)."""
        ...

    def delete(self, key: str) -> None:
        """Remove one payload; a missing one is ignored."""
        ...

    def delete_message(self, message_id: str) -> None:
        """Remove every chunk of a message; missing payloads are ignored."""
        ...

    def message_ids(self) -> Iterator[str]:
        """Every message id that has payloads stored (for orphan clean-up)."""
        ...

    def last_written(self, message_id: str) -> datetime | None:
        """When a payload of this message was last stored (UTC), or None if it has none."""
        ...

    def remove_stale_uploads(self, older_than: timedelta) -> int:
        """Remove partial uploads abandoned (by a crash) longer ago than ``older_than``."""
        ...
