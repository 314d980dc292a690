"""``VerifyStore``: re-read every stored chunk, recompute its SHA-256 and compare it with the one
recorded when it was uploaded.

Chunks are walked in key order, ``(message_id, chunk_no)``, a batch of rows at a time (no
transaction is held while payloads are read), and each payload is streamed through the hash
piece by piece, so memory stays flat however large the store. The job keeps its place as a
checkpoint (the last key done and what it found so far): a job whose process stopped is resumed
from there by another. Chunks in database rows (small ones, ``inline_payload_bytes``) are
checked too; messages whose payload was purged, and uploads in progress, are not.

A payload found missing is looked up again before it is reported: one purged, deleted or
replaced while the walk went on is not a fault.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from mailroom.domain.admin import Privilege
from mailroom.services.admin_api import Function
from mailroom.services.jobs import JobCancelled, JobContext, LeaseLost, RunnerStopping
from mailroom.storage.db import Database
from mailroom.storage.payloads import PayloadStore
from mailroom.storage.payloads.base import PayloadMissing
from mailroom.storage.repos import message_admin as repo
from mailroom.storage.repos.message_admin import StoredChunk

log = logging.getLogger(__name__)

#: How often, at most, progress is written and the checkpoint saved (each is a write).
REPORT_SECONDS = 1.0
#: Message ids kept per kind of fault (the counts go on past it).
MAX_REPORTED = 10_000
MIB = 1024 * 1024
#: Threads reading the next piece of a payload while the job hashes the one before.
_READERS = ThreadPoolExecutor(2, thread_name_prefix="mailroom-verify-read")
#: What stops the job (raised by its safe points), never taken for a fault of one payload.
STOPS = (JobCancelled, RunnerStopping, LeaseLost)


@dataclass
class Findings:
    """Where the walk is and what it found: the checkpoint of a ``VerifyStore`` job."""

    after: tuple[str, int] | None = None
    stage: str = "chunks"  # then "attachments" (the JSON API's, stored once each)
    chunks: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    faults: int = 0  # chunks missing, corrupt or unreadable

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any]) -> Findings:
        if not saved:
            return cls()
        after = saved.get("after")
        return cls(
            after=(str(after[0]), int(after[1])) if after else None,
            stage=str(saved.get("stage", "chunks")),
            chunks=int(saved.get("chunks", 0)),
            bytes=int(saved.get("bytes", 0)),
            missing=list(saved.get("missing", [])),
            corrupt=list(saved.get("corrupt", [])),
            unreadable=list(saved.get("unreadable", [])),
            faults=int(saved.get("faults", 0)),
        )

    def checkpoint(self) -> dict[str, Any]:
        return {
            "after": list(self.after) if self.after else None,
            "stage": self.stage,
            "chunks": self.chunks,
            "bytes": self.bytes,
            "missing": self.missing,
            "corrupt": self.corrupt,
            "unreadable": self.unreadable,
            "faults": self.faults,
        }

    def fault(self, kind: str, message_id: str) -> None:
        self.faults += 1
        found: list[str] = getattr(self, kind)
        # chunks come in message order: a message with several bad chunks is listed once
        if (not found or found[-1] != message_id) and len(found) < MAX_REPORTED:
            found.append(message_id)

    def result(self) -> dict[str, Any]:
        return {
            "chunksVerified": self.chunks,
            "bytesVerified": self.bytes,
            "missing": self.missing,
            "corrupt": self.corrupt,
            "unreadable": self.unreadable,
            "faultyChunks": self.faults,
            "ok": self.faults == 0,
        }


def read_ahead(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """``pieces``, each next one read in a reader thread while the caller hashes this one (the
    kernel's read-ahead does the same for a plain buffered read; the store's direct reads have
    none). One piece in flight: memory stays at two pieces."""
    pending: Future[bytes | None] = _READERS.submit(next, pieces, None)
    try:
        while (piece := pending.result()) is not None:
            pending = _READERS.submit(next, pieces, None)
            yield piece
    finally:
        wait([pending])  # never close the store's generator while a reader runs it
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


class StoreVerifier:
    def __init__(self, db: Database, payloads: PayloadStore) -> None:
        self._db = db
        self._payloads = payloads

    def run(self, context: JobContext) -> dict[str, Any]:
        found = Findings.from_checkpoint(context.checkpoint)
        with self._db.read() as conn:
            total, total_bytes = repo.count_stored(conn)
            more, more_bytes = repo.count_attachments(conn)
        total, total_bytes = total + more, total_bytes + more_bytes
        if found.after is None:
            context.log(f"Verifying {total} stored chunks ({total_bytes / MIB:.1f} MiB)...")
        else:
            context.log(
                f"Resuming after message {found.after[0]} chunk {found.after[1]} ({found.chunks} done)..."
            )
        started, first_bytes = time.monotonic(), found.bytes
        last_report = started
        try:
            while True:
                with self._db.read() as conn:
                    walk = repo.stored_after if found.stage == "chunks" else repo.attachments_after
                    batch = walk(conn, found.after)
                if not batch:
                    if found.stage == "attachments":
                        break
                    found.stage, found.after = "attachments", None
                    continue
                for chunk in batch:
                    context.check()
                    self._verify(context, chunk, found)
                    found.after = chunk.key
                    if time.monotonic() - last_report >= REPORT_SECONDS:
                        last_report = time.monotonic()
                        self._report(context, found, total)
        except RunnerStopping:
            context.save(found.checkpoint())  # resumed exactly where it stopped
            raise
        seconds = time.monotonic() - started
        rate = (found.bytes - first_bytes) / MIB / seconds if seconds > 0 else 0.0
        context.log(
            f"{found.chunks} chunks verified ({found.bytes / MIB:.1f} MiB, {rate:.0f} MiB/s): "
            f"{len(found.missing)} messages with missing payloads, {len(found.corrupt)} corrupt, "
            f"{len(found.unreadable)} unreadable."
        )
        return found.result()

    def _report(self, context: JobContext, found: Findings, total: int) -> None:
        percent = min(99, found.chunks * 100 // total) if total else 99
        text = f"{found.chunks} of {total} chunks verified"
        context.progress(percent, text)
        context.log(f"{text}...")
        context.save(found.checkpoint())

    def _verify(self, context: JobContext, chunk: StoredChunk, found: Findings) -> None:
        where = f"message {chunk.message_id} chunk {chunk.chunk_no}"
        try:
            outcome = self._digest(context, chunk)
        except PayloadMissing:
            outcome = None
        except STOPS:
            raise
        except Exception as exc:  # a disk error, the S3 client's errors: reported, the walk goes on
            self._unreadable(context, chunk, found, f"{type(exc).__name__}: {exc}")
            return
        if outcome is None:
            if self._still_stored(chunk):
                found.fault("missing", chunk.message_id)
                context.log(f"MISSING: {where}: its payload is not in the store")
            return
        size, digest = outcome
        found.chunks += 1
        found.bytes += size
        if size != chunk.size or digest != chunk.sha256:
            found.fault("corrupt", chunk.message_id)
            context.log(
                f"CORRUPT: {where}: {size} bytes with SHA-256 {digest[:16]}..., "
                f"recorded {chunk.size} bytes with {chunk.sha256[:16]}..."
            )

    def _unreadable(self, context: JobContext, chunk: StoredChunk, found: Findings, reason: str) -> None:
        found.fault("unreadable", chunk.message_id)
        context.log(f"UNREADABLE: message {chunk.message_id} chunk {chunk.chunk_no}: {reason[:300]}")

    def _digest(self, context: JobContext, chunk: StoredChunk) -> tuple[int, str] | None:
        """(size, SHA-256) of what is stored, or None if it is gone."""
        if not chunk.payload_key:
            if chunk.data is None:
                return None
            return len(chunk.data), hashlib.sha256(chunk.data).hexdigest()
        digest = hashlib.sha256()
        size = 0
        for piece in read_ahead(self._payloads.open(chunk.payload_key)):
            digest.update(piece)
            size += len(piece)
            context.check()
        return size, digest.hexdigest()

    def _still_stored(self, chunk: StoredChunk) -> bool:
        with self._db.read() as conn:
            return repo.still_stored(conn, chunk) or repo.attachment_still_stored(conn, chunk)


def verify_functions(db: Database, payloads: PayloadStore) -> list[Function]:
    verifier = StoreVerifier(db, payloads)
    return [
        Function(
            "VerifyStore",
            "Re-read every stored payload (chunk files or objects, small chunks kept in the "
            "database, and the JSON API's attachments), recompute its SHA-256 and compare it with "
            "the one recorded at upload. The "
            "result lists each message with a missing, corrupt or unreadable payload; so does the "
            "log as they are found. Messages whose payload was purged are skipped. Cancellable; "
            "resumed where it was if its server process stops. It changes nothing, so a read-only "
            "administrator may run it (and cancel their own run).",
            Privilege.READ,
            job=verifier.run,
            resumable=True,
            group="Maintenance",
        ),
    ]
