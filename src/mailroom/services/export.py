"""``ExportMailbox``: a mailbox's messages, sent and received, into one tar archive.

Each message gives ``{message_id}/metadata.json`` (what ``GetMessageDetails`` shows: metadata,
status history, chunk sizes and checksums) and, unless its payload was purged, ``{message_id}/
payload`` (its chunks in order, as the recipient downloads them). ``MANIFEST.json`` ends the
archive. The tar is written by hand (``TarInfo.tobuf`` headers, PAX for any size), so a
member whose payload turns out missing or short can be cut off again and the message kept with
its metadata alone.

Where archives go: ``Settings.export_dir`` (default ``{data_dir}/exports``). A path the
administrator names is resolved (links followed) and refused unless it lies inside that
directory; the default file name is built from the mailbox id (checked against the mailbox id
rules) and server-made time and random digits. The archive is written under a hidden temporary
name in the same directory and linked into place only when complete (never over an existing
file). The job keeps a checkpoint after whole messages (the archive's length, fsynced, and the
last message id): a job resumed after its process stopped cuts the temporary file back to that
length and goes on, holding an ``flock`` on it so that two runners never write it at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection

from mailroom.clock import Clock
from mailroom.domain.admin import ArgType, Privilege
from mailroom.domain.mailboxes import normalise_mailbox_id
from mailroom.errors import Conflict, NotFound, ValidationFailed
from mailroom.services import envelope_payloads
from mailroom.services.admin_api import Arg, Call, Function
from mailroom.services.admin_messages import MessageAdmin, iso
from mailroom.services.jobs import JobCancelled, JobContext, JobFailed, RunnerStopping
from mailroom.storage.db import Database
from mailroom.storage.payloads import PayloadStore
from mailroom.storage.payloads.base import PayloadMissing
from mailroom.storage.repos import envelopes
from mailroom.storage.repos import mailboxes as mailbox_repo
from mailroom.storage.repos import message_admin as repo
from mailroom.storage.repos.message_admin import Listed, StoredChunk

BLOCK = 512
REPORT_SECONDS = 2.0
SUFFIX = ".tar"


class PayloadProblem(Exception):
    """A chunk is missing or not the size recorded: the message is exported without payload."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind  # "missing" or "corrupt"


def inside(root: Path, path: Path) -> bool:
    return path != root and path.is_relative_to(root)


@dataclass
class Progress:
    """The checkpoint: the archive's length after the last whole message, and what was found."""

    offset: int = 0
    after: str | None = None
    messages: int = 0
    payload_bytes: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any]) -> Progress:
        return cls(**saved) if saved else cls()

    def checkpoint(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Archive:
    """A tar file written member by member at known offsets."""

    def __init__(self, handle: BinaryIO, offset: int) -> None:
        self.handle = handle
        handle.truncate(offset)
        handle.seek(offset)
        self.offset = offset

    def add_bytes(self, name: str, data: bytes, mtime: float) -> None:
        self._header(name, len(data), mtime)
        self._write(data)
        self._pad(len(data))

    def add_stream(self, name: str, size: int, pieces: Iterator[bytes], mtime: float) -> None:
        """A member of ``size`` bytes from ``pieces``; ``PayloadProblem`` (and the member cut
        off again) if they do not come to exactly that."""
        start = self.offset
        self._header(name, size, mtime)
        written = 0
        try:
            for piece in pieces:
                written += len(piece)
                if written > size:
                    raise PayloadProblem("corrupt", "longer than recorded")
                self._write(piece)
            if written != size:
                raise PayloadProblem("corrupt", "shorter than recorded")
        except BaseException:
            self.cut(start)
            raise
        self._pad(size)

    def cut(self, offset: int) -> None:
        self.handle.truncate(offset)
        self.handle.seek(offset)
        self.offset = offset

    def finish(self) -> None:
        self._write(b"\0" * (2 * BLOCK))  # the end-of-archive marker
        self.sync()

    def sync(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def _header(self, name: str, size: int, mtime: float) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, int(mtime), 0o600
        self._write(info.tobuf(tarfile.PAX_FORMAT))

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._write(b"\0" * (BLOCK - size % BLOCK))

    def _write(self, data: bytes | memoryview) -> None:
        self.handle.write(data)
        self.offset += len(data)


class MailboxExporter:
    def __init__(
        self, root: Path, db: Database, payloads: PayloadStore, messages: MessageAdmin, clock: Clock
    ):
        self._root = root
        self._db = db
        self._payloads = payloads
        self._messages = messages
        self._clock = clock

    def root(self) -> Path:
        self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self._root.resolve()

    def target(self, mailbox_id: str, requested: str | None) -> Path:
        """Where the archive goes: checked here, before a job is queued, and again by the job."""
        root = self.root()
        stamp = self._clock.now().strftime("%Y%m%dT%H%M%SZ")
        name = f"{mailbox_id}-{stamp}-{secrets.token_hex(4)}{SUFFIX}"
        if requested is None or not requested.strip():
            return root / name
        path = (root / requested).resolve()
        if not inside(root, path):
            raise ValidationFailed("body", "path", f"the path must be inside the export directory {root}")
        if path.is_dir():
            path = path / name
        if path.suffix != SUFFIX:
            raise ValidationFailed("body", "path", f"name a {SUFFIX} file or a directory")
        if path.exists():
            raise Conflict(f"{path} exists already")
        return path

    def prepare(self, call: Call) -> dict[str, Any]:
        raw = call.args["mailboxId"]
        mailbox_id = normalise_mailbox_id(raw)
        if mailbox_id is None:
            raise ValidationFailed("body", "mailboxId", "a mailbox id is 1-100 letters, digits, _ or -")
        with self._db.read() as conn:
            if mailbox_repo.get(conn, mailbox_id) is None:
                raise NotFound(f"mailbox {mailbox_id} does not exist")
        return {"mailboxId": mailbox_id, "path": str(self.target(mailbox_id, call.args["path"]))}

    def run(self, context: JobContext) -> dict[str, Any]:
        mailbox_id = str(context.arguments["mailboxId"])
        final = Path(str(context.arguments["path"]))
        root = self.root()
        if normalise_mailbox_id(mailbox_id) != mailbox_id or not inside(
            root, final.parent.resolve() / final.name
        ):
            raise JobFailed("Refusing the export's path", f"{final} is not inside {root}")
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not final.parent.resolve().is_relative_to(root):  # a link made meanwhile
            raise JobFailed("Refusing the export's path", f"{final} is not inside {root}")
        partial = final.parent / f".{final.name}.{context.job.job_id}.partial"
        progress = Progress.from_checkpoint(context.checkpoint)
        try:
            with _locked(partial, context) as handle:
                self._write(context, Archive(handle, progress.offset), mailbox_id, progress)
                if final.exists():
                    raise JobFailed("The export's file exists already", str(final))
                os.link(partial, final)  # never over a file that appeared meanwhile
            partial.unlink()
            _fsync_dir(final.parent)
        except (JobCancelled, JobFailed):
            partial.unlink(missing_ok=True)
            raise
        size = final.stat().st_size
        context.log(f"Exported {progress.messages} messages ({size} bytes) to {final}")
        return {
            "path": str(final),
            "messages": progress.messages,
            "bytes": size,
            "payloadBytes": progress.payload_bytes,
            "missing": progress.missing,
            "corrupt": progress.corrupt,
        }

    def _write(self, context: JobContext, archive: Archive, mailbox_id: str, progress: Progress) -> None:
        with self._db.read() as conn:
            total = repo.count_mailbox_messages(conn, mailbox_id)
        context.log(
            f"Exporting {total} messages of {mailbox_id}..."
            if progress.after is None
            else f"Resuming after message {progress.after} ({progress.messages} exported)..."
        )
        last = time.monotonic()
        try:
            while True:
                with self._db.read() as conn:
                    batch = repo.mailbox_messages_after(conn, mailbox_id, progress.after)
                if not batch:
                    break
                for listed in batch:
                    context.check()
                    self._message(context, archive, listed, progress)
                    progress.after, progress.offset = listed.message.message_id, archive.offset
                    progress.messages += 1
                    if time.monotonic() - last >= REPORT_SECONDS:
                        last = time.monotonic()
                        self._keep(context, archive, progress)
                        context.progress(min(99, progress.messages * 100 // max(total, 1)))
        except RunnerStopping:
            self._keep(context, archive, progress)  # resumed after the last whole message
            raise
        manifest = {
            "mailboxId": mailbox_id,
            "exported": iso(self._clock.now()),
            "messages": progress.messages,
            "missing": progress.missing,
            "corrupt": progress.corrupt,
        }
        archive.add_bytes("MANIFEST.json", json.dumps(manifest, indent=2).encode(), time.time())
        archive.finish()

    def _keep(self, context: JobContext, archive: Archive, progress: Progress) -> None:
        archive.sync()  # the checkpoint's length must be on disk before it is saved
        context.save(progress.checkpoint())

    def _message(self, context: JobContext, archive: Archive, listed: Listed, progress: Progress) -> None:
        message_id = listed.message.message_id
        mtime = listed.message.created_at.timestamp()
        try:
            details = self._messages.details(message_id)
        except NotFound:
            return  # deleted meanwhile
        archive.add_bytes(f"{message_id}/metadata.json", json.dumps(details, indent=2).encode(), mtime)
        if listed.payload_purged or not listed.message.total_chunks:
            return
        with self._db.read() as conn:
            chunks = repo.chunks_of(conn, [message_id])
            composed = self._composed(conn, message_id) if not chunks else None
        if composed is not None:  # a JSON API message: its MESH payload, composed as it is read
            try:
                archive.add_stream(f"{message_id}/payload", listed.message.file_size, composed, mtime)
            except PayloadMissing:
                progress.missing.append(message_id)
                context.log(f"MISSING: message {message_id}: an attachment is gone; exported without it")
                return
            progress.payload_bytes += listed.message.file_size
            return
        digests: list[bool] = []
        try:
            archive.add_stream(
                f"{message_id}/payload",
                sum(chunk.size for chunk in chunks),
                self._pieces(context, chunks, digests),
                mtime,
            )
        except PayloadProblem as exc:
            (progress.missing if exc.kind == "missing" else progress.corrupt).append(message_id)
            context.log(f"{exc.kind.upper()}: message {message_id}: payload {exc}; exported without it")
            return
        progress.payload_bytes += sum(chunk.size for chunk in chunks)
        if not all(digests):
            progress.corrupt.append(message_id)
            context.log(f"CORRUPT: message {message_id}: a chunk's SHA-256 differs from the recorded one")

    def _composed(self, conn: Connection, message_id: str) -> Iterator[bytes] | None:
        envelope_id = envelopes.envelope_id_of(conn, message_id)
        head = envelopes.envelope(conn, envelope_id) if envelope_id else None
        if head is None:
            return None
        parts = envelopes.attachments_of(conn, [head.envelope_id])[head.envelope_id]
        return envelope_payloads.mesh_payload(self._payloads, head.envelope_id, head.body, parts)

    def _pieces(self, context: JobContext, chunks: list[StoredChunk], digests: list[bool]) -> Iterator[bytes]:
        for chunk in chunks:
            digest = hashlib.sha256()
            if not chunk.payload_key:
                if chunk.data is None:
                    raise PayloadProblem("missing", "missing")
                pieces: Iterator[bytes] = iter([chunk.data])
            else:
                try:
                    pieces = self._payloads.open(chunk.payload_key)
                except PayloadMissing:
                    raise PayloadProblem("missing", f"chunk {chunk.chunk_no} missing") from None
            size = 0
            for piece in pieces:
                context.check()
                digest.update(piece)
                size += len(piece)
                yield piece
            if size != chunk.size:
                raise PayloadProblem(
                    "corrupt", f"chunk {chunk.chunk_no} is {size} bytes, recorded {chunk.size}"
                )
            digests.append(digest.hexdigest() == chunk.sha256)


@contextlib.contextmanager
def _locked(path: Path, context: JobContext) -> Iterator[BinaryIO]:
    """``path`` opened for writing (created 0600), under an exclusive ``flock``: a runner that
    took over a job waits here until one still writing it has let go."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    handle = os.fdopen(fd, "r+b")
    try:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                context.check()
                time.sleep(0.2)
        yield handle
    finally:
        handle.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def export_functions(exporter: MailboxExporter) -> list[Function]:
    return [
        Function(
            "ExportMailbox",
            "Write a mailbox's messages, sent and received, into one tar archive: for each, "
            "`{messageId}/metadata.json` (metadata, status history, chunk checksums) and "
            "`{messageId}/payload` (unless purged), then `MANIFEST.json`. It goes into the export "
            "directory (`MAILROOM_EXPORT_DIR`, default `{data_dir}/exports`), or to `path`, which "
            "must resolve inside it. Written under a temporary name and renamed when complete; "
            "resumed where it was if its server process stops. The result gives the path, the "
            "number of messages and the archive's size.",
            Privilege.ADMIN,
            (
                Arg("mailboxId", ArgType.STRING, "The mailbox to export."),
                Arg(
                    "path",
                    ArgType.STRING,
                    "A .tar file or a directory, relative to the export directory (or absolute, inside it).",
                    optional=True,
                    nullable=True,
                ),
            ),
            job=exporter.run,
            resumable=True,
            prepare=exporter.prepare,
            group="Messages",
        ),
    ]
