"""Sending: chunking, gzip per chunk, retries that never duplicate, resumable chunked sends.

The first request of a send (``POST /outbox``) is the one that creates a message, so it is
never repeated blindly. If it fails in a way that leaves open whether the server accepted it
(the connection broke after the body went out, a 5xx from a proxy, ...), the client asks the
server by the send's local id (``GET /outbox/tracking/{local_id}``): found → that is our
message, carry on; not found → nothing landed, so trying again cannot duplicate it. Every send
therefore has a local id; one is generated when the caller gives none. Chunks 2..n are safe to
repeat (the server keeps the last copy of a chunk number), so they are retried freely.
"""

from __future__ import annotations

import io
import logging
import math
import os
import shutil
import tempfile
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote

import httpx

from ._errors import MeshApiError, MeshTransportError, ProtocolError, SendOutcomeUnknown
from ._failures import tls_failure
from ._http import NOT_SENT_ERRORS, RETRY_STATUSES, Body, Session, error_from, retry_after
from ._journal import Journal, send_journal
from ._types import SendResult, Tracking

log = logging.getLogger("mailroom.client")

BLOCK = 1024 * 1024
Progress = Callable[[int], None]
"""Called with a number of (uncompressed) bytes each time the upload gets further: for each
block of about 1 MiB as a chunk's body streams out, and for chunks the server already had. A
chunk sent again after a failure first takes back what it had counted (a negative number), so
the sum is always the bytes on their way or accepted, and the file's size at the end."""


@dataclass(frozen=True)
class SendOptions:
    recipient: str
    workflow_id: str
    subject: str | None = None
    local_id: str | None = None
    file_name: str | None = None
    content_type: str | None = None
    encrypted: bool = False
    compressed: bool = False
    checksum: str | None = None
    partner_id: str | None = None
    gzip: bool = False
    chunk_size: int | None = None

    def headers(self, local_id: str, total_chunks: int) -> dict[str, str]:
        headers = {
            "Mex-To": self.recipient.upper(),
            "Mex-WorkflowID": self.workflow_id,
            "Mex-LocalID": local_id,
            "Mex-Chunk-Range": f"1:{total_chunks}",
            "Content-Type": "application/octet-stream",
        }
        optional = {
            "Mex-Subject": self.subject,
            "Mex-FileName": self.file_name,
            "Mex-Content-Type": self.content_type,
            "Mex-Content-Checksum": self.checksum,
            "Mex-PartnerID": self.partner_id,
            "Mex-Content-Encrypted": "Y" if self.encrypted else None,
            "Mex-Content-Compressed": "Y" if self.compressed else None,
        }
        headers.update({name: value for name, value in optional.items() if value})
        return headers


def new_local_id() -> str:
    return f"mailroom-{uuid.uuid4().hex}"


class Meter:
    """Counts an upload's progress per chunk, so a chunk sent again is not counted twice."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.counted: dict[int, int] = {}

    def _report(self, amount: int) -> None:
        if amount and self.progress is not None:
            self.progress(amount)

    def restart(self, number: int) -> None:
        """Chunk ``number``'s body is being sent (again) from its start."""
        self._report(-self.counted.pop(number, 0))

    def streamed(self, number: int, amount: int) -> None:
        self.counted[number] = self.counted.get(number, 0) + amount
        self._report(amount)

    def accepted(self, number: int, length: int) -> None:
        """The server has chunk ``number`` (``length`` bytes): count whatever was not yet."""
        self._report(length - self.counted.get(number, 0))
        self.counted[number] = length


class Source:
    """A seekable binary file of known size, read one chunk at a time."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self.handle = handle
        self.size = size

    def chunk_count(self, chunk_size: int) -> int:
        return max(1, math.ceil(self.size / chunk_size))

    def chunk_range(self, number: int, chunk_size: int) -> tuple[int, int]:
        start = (number - 1) * chunk_size
        return start, min(chunk_size, self.size - start)

    def body(self, number: int, chunk_size: int, gzip: bool, meter: Meter) -> tuple[Body, dict[str, str]]:
        """A body factory for chunk ``number`` (each block read is counted on ``meter``) and
        the headers describing its encoding."""
        start, length = self.chunk_range(number, chunk_size)

        def blocks() -> Iterator[bytes]:
            meter.restart(number)
            self.handle.seek(start)
            remaining = length
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
            while remaining > 0:
                block = self.handle.read(min(BLOCK, remaining))
                if not block:
                    raise OSError(f"source ended {remaining} bytes early (was it changed?)")
                remaining -= len(block)
                meter.streamed(number, len(block))
                out = compressor.compress(block) if compressor else block
                if out:
                    yield out
            if compressor:
                yield compressor.flush()

        if gzip:
            return blocks, {"Content-Encoding": "gzip"}
        return blocks, {"Content-Length": str(length)}


def spool(stream: IO[bytes]) -> tuple[IO[bytes], int]:
    """Copy a one-pass stream to an anonymous temporary file (constant memory)."""
    spooled = tempfile.TemporaryFile()  # noqa: SIM115 (handed to the caller, who closes it)
    shutil.copyfileobj(stream, spooled, BLOCK)
    size = spooled.tell()
    spooled.seek(0)
    return spooled, size


@dataclass
class _State:
    """How far a send got; kept in the journal (when there is one) after every step."""

    journal: Journal | None
    local_id: str
    total: int
    message_id: str | None = None
    done: set[int] = field(default_factory=set)
    resumed: bool = False
    recovered: bool = False

    @classmethod
    def resume(cls, journal: Journal | None, total: int, local_id: str | None) -> _State:
        saved = journal.load() if journal else None
        if not saved or saved.get("total_chunks") != total or not saved.get("local_id"):
            return cls(journal, local_id or new_local_id(), total)
        done = {int(number) for number in saved.get("done", [])}
        return cls(journal, str(saved["local_id"]), total, saved.get("message_id"), done, resumed=True)

    def save(self) -> None:
        if self.journal is not None:
            state = {"local_id": self.local_id, "message_id": self.message_id, "total_chunks": self.total}
            self.journal.save({**state, "done": sorted(self.done)})


class Sender:
    def __init__(self, session: Session, journal_dir: Path) -> None:
        self.session = session
        self.journal_dir = journal_dir
        self.outbox = f"/messageexchange/{session.config.mailbox}/outbox"

    # -- entry points ----------------------------------------------------------------------------

    def send_path(self, path: Path, options: SendOptions, progress: Progress | None) -> SendResult:
        path = path.resolve()
        stat = path.stat()
        chunk_size = options.chunk_size or self.session.config.chunk_size
        journal = send_journal(
            self.journal_dir,
            self.session.config.url,
            self.session.config.mailbox,
            options.recipient.upper(),
            options.workflow_id,
            path,
            stat.st_size,
            stat.st_mtime_ns,
            chunk_size,
            options.gzip,
            options.local_id,
        )
        with path.open("rb") as handle:
            return self.send(Source(handle, stat.st_size), options, progress, journal)

    def send_stream(self, stream: IO[bytes], options: SendOptions, progress: Progress | None) -> SendResult:
        if stream.seekable():
            start = stream.tell()
            size = stream.seek(0, os.SEEK_END) - start
            stream.seek(start)
            if start == 0:
                return self.send(Source(stream, size), options, progress, None)
        spooled, size = spool(stream)
        with spooled:
            return self.send(Source(spooled, size), options, progress, None)

    def send_bytes(self, data: bytes, options: SendOptions, progress: Progress | None) -> SendResult:
        return self.send(Source(io.BytesIO(data), len(data)), options, progress, None)

    # -- the protocol ----------------------------------------------------------------------------

    def send(
        self, source: Source, options: SendOptions, progress: Progress | None, journal: Journal | None
    ) -> SendResult:
        chunk_size = options.chunk_size or self.session.config.chunk_size
        state = _State.resume(journal, source.chunk_count(chunk_size), options.local_id)
        meter = Meter(progress)
        for number in sorted(state.done):  # a resumed send: what the server already has
            meter.accepted(number, source.chunk_range(number, chunk_size)[1])
        if state.message_id is None:
            self._start(source, options, state, chunk_size, meter)
        for number in range(2, state.total + 1):
            if number in state.done:
                continue
            if not self.chunk(source, state, number, chunk_size, options, meter):
                state.done.update(range(number, state.total + 1))  # 423: the server has them all
                break
            state.done.add(number)
            state.save()
            meter.accepted(number, source.chunk_range(number, chunk_size)[1])
        for number in range(1, state.total + 1):
            meter.accepted(number, source.chunk_range(number, chunk_size)[1])
        if journal is not None:
            journal.remove()
        message_id = state.message_id or ""
        resumed = state.resumed or state.recovered
        return SendResult(message_id, state.local_id, state.total, source.size, resumed, state.recovered)

    def _start(
        self, source: Source, options: SendOptions, state: _State, chunk_size: int, meter: Meter
    ) -> None:
        """Chunk 1, unless an interrupted earlier run had already got it accepted."""
        found = self.find_sent(state.local_id, options) if state.resumed else None
        if found is not None:
            state.message_id, state.recovered = found.message_id, True
            if found.status != "uploading":
                state.done = set(range(1, state.total + 1))
        else:
            state.save()  # the local id is on disk before anything can land
            state.message_id, state.recovered = self.first_chunk(
                source, options, state.local_id, state.total, chunk_size, meter
            )
        state.done.add(1)
        state.save()

    def first_chunk(
        self, source: Source, options: SendOptions, local_id: str, total: int, chunk_size: int, meter: Meter
    ) -> tuple[str, bool]:
        """POST chunk 1; returns (message id, recovered via tracking)."""
        body, encoding = source.body(1, chunk_size, options.gzip, meter)
        headers = {**options.headers(local_id, total), **encoding}
        failed = 0
        while True:
            failure = self._first_attempt(headers, body)
            if isinstance(failure, str):
                return failure, False
            if failure.ambiguous:
                found = self.find_sent(local_id, options)
                if found is not None:
                    log.info("send %s had landed as %s; not sent again", local_id, found.message_id)
                    return found.message_id, True
            failed += 1
            if failed >= self.session.retry.attempts or failure.final:
                raise failure.error(self.session, self.outbox, failed)
            self.session.wait(failed, failure.retry_after, failure.why)

    def _first_attempt(self, headers: dict[str, str], body: Body) -> str | _Failed:
        """One POST of chunk 1: the message id, or how it failed."""
        try:
            response = self.session.send_once("POST", self.outbox, headers=headers, body=body)
        except NOT_SENT_ERRORS as exc:
            return _Failed(f"send: {exc!r}", ambiguous=False, exc=exc, final=tls_failure(exc) is not None)
        except httpx.TransportError as exc:
            return _Failed(f"send: {exc!r}", ambiguous=True, exc=exc)
        if response.status_code in (200, 202):
            return _message_id(response)
        if response.status_code not in RETRY_STATUSES:
            raise error_from(response)
        status = response.status_code
        ambiguous = status not in (425, 429)
        return _Failed(f"send: HTTP {status}", ambiguous=ambiguous, retry_after=retry_after(response))

    def find_sent(self, local_id: str, options: SendOptions) -> Tracking | None:
        """Our message with this local id in the outbox, if the server has one."""
        url = f"{self.outbox}/tracking/{quote(local_id, safe='')}"
        try:
            response = self.session.request("GET", url, ok=(200, 300), headers={"Accept": "application/json"})
        except MeshApiError as exc:
            if exc.status_code == 404:
                return None
            raise SendOutcomeUnknown(
                f"could not track local id {local_id}: {exc}", local_id=local_id
            ) from exc
        except MeshTransportError as exc:
            raise SendOutcomeUnknown(
                f"could not track local id {local_id}: {exc}", local_id=local_id
            ) from exc
        if response.status_code == 300:
            raise SendOutcomeUnknown(f"several sent messages have local id {local_id}", local_id=local_id)
        found = Tracking.from_v1(response.json())
        mismatch = (found.recipient or options.recipient).upper() != options.recipient.upper() or (
            found.workflow_id or options.workflow_id
        ) != options.workflow_id
        if mismatch or not found.message_id:
            raise SendOutcomeUnknown(
                f"local id {local_id} belongs to another message ({found.message_id})", local_id=local_id
            )
        return found

    def chunk(
        self, source: Source, state: _State, number: int, chunk_size: int, options: SendOptions, meter: Meter
    ) -> bool:
        """POST chunk ``number`` (retried); False when the message is already complete (423)."""
        body, encoding = source.body(number, chunk_size, options.gzip, meter)
        headers = {
            "Mex-Chunk-Range": f"{number}:{state.total}",
            "Content-Type": "application/octet-stream",
            **encoding,
        }
        try:
            url = f"{self.outbox}/{state.message_id}/{number}"
            self.session.request("POST", url, headers=headers, body=body)
        except MeshApiError as exc:
            if exc.status_code == 423:
                return False
            raise
        return True


@dataclass(frozen=True)
class _Failed:
    """How one attempt at chunk 1 failed. ``ambiguous``: it may have landed all the same;
    ``final``: trying again cannot help (a TLS failure)."""

    why: str
    ambiguous: bool
    exc: httpx.TransportError | None = None
    retry_after: float | None = None
    final: bool = False

    def error(self, session: Session, outbox: str, attempts: int) -> MeshTransportError:
        if self.exc is not None:
            return session.transport_error("POST", outbox, self.exc, attempts, "nothing landed")
        url = session.config.url
        return MeshTransportError(f"{self.why} at {url} (after {attempts} attempts; nothing landed)", url=url)


def _message_id(response: httpx.Response) -> str:
    body = response.json()
    message_id = body.get("message_id") or body.get("messageID") if isinstance(body, dict) else None
    if not message_id:
        raise ProtocolError(
            f"send answered {response.status_code} without a message id: {response.text[:200]}"
        )
    return str(message_id)
