"""Small JSON resume journals, written atomically (temp file, fsync, rename, fsync folder).

- A chunked send keeps ``send-{key}.json`` in the journal folder (``MeshConfig.journal_dir``,
  default ``~/.local/state/mailroom-client``). The key is a hash of the server, mailbox,
  recipient, workflow, file (absolute path, size, modification time), chunk size and gzip
  choice, so the same send of the same unchanged file finds it again. It is written before
  the first request (holding the local id) and after each accepted chunk, and removed once
  the message is complete.
- A download keeps ``.{message_id}.partial`` (the bytes so far) and
  ``.{message_id}.journal.json`` (chunks done and their total size) in the destination
  folder, removed when the file is renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class Journal:
    """A JSON document at ``path`` that may or may not exist."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # a damaged journal only means starting over
        return data if isinstance(data, dict) else None

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(state, sort_keys=True).encode())

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def send_journal(folder: Path, *parts: object) -> Journal:
    key = hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:32]
    return Journal(folder / f"send-{key}.json")
