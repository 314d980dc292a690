"""Receiving: inbox paging, chunked downloads straight to disk (resumable), acknowledgement."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx

from ._errors import MeshTransportError, MessageGoneError, MessageNotFoundError, ProtocolError
from ._http import Session
from ._journal import Journal, atomic_write, fsync_dir
from ._types import REPORT_TYPE, InboxItem, Message, Report, mex_headers, total_chunks

log = logging.getLogger("mailroom.client")

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}$")

Received = Message | Report

DownloadProgress = Callable[[str, int, int | None], None]
"""Called as a download gets further with the message id, the bytes received so far (as sent,
i.e. compressed if the server gzipped them) and the expected total: None until known, an
estimate from the first chunk's size while a chunked message downloads, exact from its last
chunk on."""


class Meter:
    """Reports one message's download to a :data:`DownloadProgress` callback."""

    def __init__(self, message_id: str, progress: DownloadProgress | None, done: int = 0) -> None:
        self.message_id = message_id
        self.progress = progress
        self.done = done  # bytes of the chunks complete
        self.expected: int | None = None

    def chunk_started(self, number: int, headers: httpx.Headers) -> None:
        length = headers.get("content-length", "")
        total = total_chunks(mex_headers(headers))
        if not length.isdigit():
            self.expected = None
        elif number >= total:
            self.expected = self.done + int(length)
        elif self.expected is None:
            self.expected = int(length) * total  # chunks are of one size but the last
        self.received(0)

    def received(self, in_chunk: int) -> None:
        if self.progress is not None:
            self.progress(self.message_id, self.done + in_chunk, self.expected)

    def chunk_done(self, in_chunk: int) -> None:
        self.done += in_chunk


def safe_id(message_id: str) -> str:
    """Message ids become file names, so refuse anything that is not a plain name."""
    if not _SAFE_ID.match(message_id):
        raise ProtocolError(f"refusing to use message id {message_id!r} as a file name")
    return message_id


def data_path(folder: Path, message_id: str) -> Path:
    return folder / f"{safe_id(message_id)}.dat"


def meta_path(folder: Path, message_id: str) -> Path:
    return folder / f"{safe_id(message_id)}.json"


class Receiver:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.inbox = f"/messageexchange/{session.config.mailbox}/inbox"

    # -- listing ---------------------------------------------------------------------------------

    def pages(
        self, workflow_filter: str | None = None, max_results: int | None = None
    ) -> Iterator[list[str]]:
        """Each page of message ids, following the v2 ``links.next``."""
        params: dict[str, str] = {}
        if workflow_filter:
            params["workflow_filter"] = workflow_filter
        if max_results:
            params["max_results"] = str(max_results)
        url: str | None = self.inbox
        query: dict[str, str] | None = params
        while url:
            body = self.session.request("GET", url, params=query).json()
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ProtocolError(f"inbox answered {body!r:.200}")
            yield [str(item) for item in body["messages"]]
            url = (body.get("links") or {}).get("next")
            query = None

    def list_all(self, workflow_filter: str | None = None) -> list[str]:
        return [message_id for page in self.pages(workflow_filter) for message_id in page]

    def describe(self, message_id: str) -> InboxItem | None:
        """A waiting message's headers (``HEAD``); None if it left the inbox meanwhile."""
        try:
            response = self.session.request("HEAD", f"{self.inbox}/{message_id}", ok=(200,))
        except (MessageGoneError, MessageNotFoundError):
            return None
        return InboxItem.from_headers(message_id, response.headers)

    # -- downloading -----------------------------------------------------------------------------

    def _chunk_url(self, message_id: str, number: int) -> str:
        return f"{self.inbox}/{message_id}" if number == 1 else f"{self.inbox}/{message_id}/{number}"

    def _copy_chunk(self, message_id: str, number: int, out: IO[bytes], meter: Meter) -> dict[str, str]:
        """Write chunk ``number`` to ``out`` (gunzipped if the server gzipped it), retrying a body
        that breaks off (``out`` is put back where it was); returns the response's headers."""
        start = out.tell() if out.seekable() else None
        failed = 0
        while True:
            response = self.session.request("GET", self._chunk_url(message_id, number), stream=True)
            try:
                meter.chunk_started(number, response.headers)
                for block in response.iter_bytes(1024 * 1024):
                    out.write(block)
                    meter.received(response.num_bytes_downloaded)
                meter.chunk_done(response.num_bytes_downloaded)
                return dict(response.headers)
            except httpx.TransportError as exc:
                failed += 1
                if start is None or failed >= self.session.retry.attempts:
                    url = self.session.config.url
                    message = f"download {message_id} chunk {number} from {url}: {exc!r}"
                    raise MeshTransportError(message, url=url) from exc
                out.seek(start)
                out.truncate()
                self.session.wait(failed, None, f"download {message_id} chunk {number}: {exc!r}")
            finally:
                response.close()

    def to_stream(
        self, message_id: str, out: IO[bytes], progress: DownloadProgress | None = None
    ) -> Received:
        """Download every chunk into ``out``; a REPORT writes nothing."""
        start = out.tell() if out.seekable() else 0
        meter = Meter(message_id, progress)
        headers = self._copy_chunk(message_id, 1, out, meter)
        mex = mex_headers(headers)
        if mex.get("messagetype", "").upper() == REPORT_TYPE:
            return _report(Report.from_headers(headers))
        for number in range(2, total_chunks(mex) + 1):
            self._copy_chunk(message_id, number, out, meter)
        size = (out.tell() - start) if out.seekable() else -1
        return Message.from_headers(headers, size=size, body=out)

    def to_folder(self, message_id: str, folder: Path, progress: DownloadProgress | None = None) -> Received:
        """Download into ``folder/{id}.dat`` (+ ``{id}.json`` metadata), durable once returned.

        Bytes go to ``.{id}.partial``; after each chunk of a chunked message the journal
        ``.{id}.journal.json`` records how far it got, so an interrupted download resumes from
        the next chunk. The file is fsynced and renamed into place only when complete.
        """
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{safe_id(message_id)}.partial"
        journal = Journal(folder / f".{message_id}.journal.json")
        state = journal.load()
        handle: IO[bytes]
        if state and partial.exists() and partial.stat().st_size >= int(state["size"]):
            handle = partial.open("r+b")
            handle.truncate(int(state["size"]))
            handle.seek(0, os.SEEK_END)
            first, mex, done = state["headers"], state["headers"], int(state["chunks_done"])
            meter = Meter(message_id, progress, handle.tell())
        else:
            handle = partial.open("wb")
            meter = Meter(message_id, progress)
            first = self._copy_chunk(message_id, 1, handle, meter)
            mex, done = mex_headers(first), 1
        with handle:
            if str(mex.get("messagetype", "")).upper() == REPORT_TYPE:
                handle.close()
                partial.unlink()
                where = meta_path(folder, message_id)
                report = Report.from_headers(first, path=where)
                atomic_write(where, json.dumps(report.to_json(), indent=2).encode())
                return _report(report)
            total = total_chunks(mex)
            for number in range(done + 1, total + 1):
                _sync(handle)
                journal.save({"chunks_done": number - 1, "size": handle.tell(), "headers": mex})
                self._copy_chunk(message_id, number, handle, meter)
            _sync(handle)
            size = handle.tell()
        final = data_path(folder, message_id)
        os.replace(partial, final)
        message = Message.from_headers({f"mex-{k}": v for k, v in mex.items()}, size=size, path=final)
        atomic_write(meta_path(folder, message_id), json.dumps(message.to_json(), indent=2).encode())
        fsync_dir(folder)
        journal.remove()
        return message

    # -- acknowledging and the receive loop ------------------------------------------------------

    def ack(self, message_id: str) -> None:
        self.session.request("PUT", f"{self.inbox}/{message_id}/status/acknowledged")

    def new_ids(self, seen: set[str], workflow_filter: str | None) -> Iterator[str]:
        """Inbox ids not handled yet, listing again until a listing brings nothing new."""
        while True:
            fresh = [message_id for message_id in self.list_all(workflow_filter) if message_id not in seen]
            if not fresh:
                return
            for message_id in fresh:
                seen.add(message_id)
                yield message_id

    def save_all(
        self, folder: Path, workflow_filter: str | None, progress: DownloadProgress | None = None
    ) -> list[Received]:
        saved: list[Received] = []
        for message_id in self.new_ids(set(), workflow_filter):
            try:
                item = self.to_folder(message_id, folder, progress)
            except (MessageGoneError, MessageNotFoundError) as exc:
                log.warning("message %s vanished before download: %s", message_id, exc)
                continue
            self.ack(message_id)  # only now: the file and its metadata are on disk
            saved.append(item)
        return saved

    def each(
        self, workflow_filter: str | None, progress: DownloadProgress | None = None
    ) -> Iterator[Received]:
        for message_id in self.new_ids(set(), workflow_filter):
            with tempfile.TemporaryFile() as spool:
                try:
                    item = self.to_stream(message_id, spool, progress)
                except (MessageGoneError, MessageNotFoundError) as exc:
                    log.warning("message %s vanished before download: %s", message_id, exc)
                    continue
                spool.seek(0)
                yield item
                # Reached only when the caller asks for the next message, i.e. its processing
                # returned normally. An exception, a break or close() never gets here.
                self.ack(message_id)


def _sync(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _report(report: Report) -> Report:
    log.warning("%s", report.summary())
    return report
