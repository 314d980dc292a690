"""Inbox list, count, rich inbox, download (GET/HEAD) and acknowledgement."""

from __future__ import annotations

import itertools
import logging
import zlib
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Send

from mailroom.container import Container
from mailroom.domain.messages import WorkflowFilter
from mailroom.errors import UndecodablePayload, ValidationFailed
from mailroom.ids import normalise_message_id, require_message_id
from mailroom.services.authentication import MailboxPrincipal
from mailroom.services.receiving import Download
from mailroom.web.deps import (
    ChunkNumber,
    Principal,
    Services,
    Version,
    get_container,
    peer_of,
    version_of,
)
from mailroom.web.streaming import read_in_turn
from mailroom.web.wire.headers import message_headers
from mailroom.web.wire.media import V2_TYPE, ApiVersion, accepts_gzip
from mailroom.web.wire.paging import int_param, link, rich_page, text_param

router = APIRouter()
log = logging.getLogger(__name__)

DEFAULT_PAGE = 500
#: Chunks up to this size are sent from memory; larger ones stream from storage.
SMALL_CHUNK = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
GUNZIP_STEP = 1024 * 1024


@router.get("/messageexchange/{mailbox}/inbox")
async def list_inbox(request: Request, mailbox: str) -> JSONResponse:
    services = get_container(request)
    principal = await services.auth.authenticate_async(
        request.headers.get("authorization"), mailbox, peer_of(request)
    )
    return await run_in_threadpool(_list_inbox, principal, request, services, version_of(request))


def _list_inbox(
    principal: MailboxPrincipal, request: Request, services: Container, version: ApiVersion
) -> JSONResponse:
    limit = int_param(request, "max_results", DEFAULT_PAGE, 10, 5000)
    continue_from = text_param(request, "continue_from", 24, 1000)
    raw_filter = text_param(request, "workflow_filter", 2, 255)
    workflow_filter = WorkflowFilter.parse(raw_filter) if raw_filter else None
    if version is ApiVersion.V1:
        last_id = normalise_message_id(continue_from) if continue_from else None
        if continue_from and last_id is None:
            raise ValidationFailed("query", "continue_from", "unknown message id", value=continue_from)
        page = services.receiving.inbox(
            principal, limit=limit, after_message_id=last_id, workflow_filter=workflow_filter
        )
        return JSONResponse({"messages": page.message_ids})
    page = services.receiving.inbox(
        principal, limit=limit, continue_from=continue_from, workflow_filter=workflow_filter, with_count=True
    )
    params: dict[str, Any] = {
        "max_results": limit if limit != DEFAULT_PAGE else None,
        "workflow_filter": raw_filter,
    }
    path = f"/messageexchange/{principal.mailbox_id}/inbox"
    links = {"self": link(path, params)}
    if page.next_token:
        links["next"] = link(path, {**params, "continue_from": page.next_token})
    body = {"messages": page.message_ids, "links": links, "approx_inbox_count": page.approx_count}
    return JSONResponse(body, media_type=V2_TYPE)


@router.get("/messageexchange/{mailbox}/inbox/rich")
def rich_inbox(request: Request, mailbox: str, principal: Principal, services: Services) -> JSONResponse:
    return JSONResponse(rich_page(request, principal, services, outbox=False), media_type=V2_TYPE)


@router.get("/messageexchange/{mailbox}/count")
def count_inbox(mailbox: str, principal: Principal, services: Services, version: Version) -> JSONResponse:
    count = services.receiving.count(principal)
    if version is ApiVersion.V2:
        return JSONResponse({"count": count})
    return JSONResponse({"count": count, "internalID": principal.mailbox_id, "allResultsIncluded": True})


@router.head("/messageexchange/{mailbox}/inbox/{message_id}")
def head_message(mailbox: str, message_id: str, principal: Principal, services: Services) -> Response:
    message = services.receiving.head(principal, require_message_id(message_id))
    headers = message_headers(message, 1)
    if message.meta.content_encoding == "gzip" and not message.is_report:
        headers["content-encoding"] = "gzip"
    return Response(status_code=200, headers=headers)


@router.get("/messageexchange/{mailbox}/inbox/{message_id}")
async def download_first(request: Request, mailbox: str, message_id: str) -> Response:
    services = get_container(request)
    principal = await services.auth.authenticate_async(
        request.headers.get("authorization"), mailbox, peer_of(request)
    )
    found = await services.receiving.download_async(principal, require_message_id(message_id), 1)
    if found.chunk is None or (found.chunk.inline and not _must_gunzip(found, request)):
        return _respond(found, request, services, version_of(request))  # bytes already in memory
    return await run_in_threadpool(_respond, found, request, services, version_of(request))


@router.get("/messageexchange/{mailbox}/inbox/{message_id}/{chunk_no}")
def download(
    request: Request,
    mailbox: str,
    message_id: str,
    chunk_no: ChunkNumber,
    principal: Principal,
    services: Services,
    version: Version,
) -> Response:
    return _download(principal, request, message_id, chunk_no, services, version)


def _download(
    principal: MailboxPrincipal,
    request: Request,
    message_id: str,
    chunk_no: int,
    services: Container,
    version: ApiVersion,
) -> Response:
    found = services.receiving.download(principal, require_message_id(message_id), chunk_no)
    return _respond(found, request, services, version)


def _respond(found: Download, request: Request, services: Container, version: ApiVersion) -> Response:
    """The response for a chunk found downloadable (reads stored bytes: a worker thread's job
    unless the chunk lives in its row)."""
    chunk_no = found.chunk_no
    headers = message_headers(found.message, chunk_no)
    if found.chunk is None:  # a REPORT: headers only
        return Response(b"", status_code=200, headers=headers, media_type="application/octet-stream")
    stream = services.receiving.open_chunk(found)
    body, encoding, length = _negotiate_body(
        found, stream, request, services.settings.compress_downloads, version
    )
    if encoding:
        headers["content-encoding"] = encoding
        headers["mex-content-compressed"] = "Y"
    if length is not None:
        headers["content-length"] = str(length)
    headers["etag"] = f'"{found.chunk.sha256}"'
    status = 206 if chunk_no < found.message.total_chunks else 200
    media_type = _media_type(found, version)
    if length is not None and length <= SMALL_CHUNK:
        # read in this worker thread: no thread hop per piece for the common small message
        return Response(b"".join(body), status_code=status, headers=headers, media_type=media_type)
    return CutShortOnBadGzip(
        read_in_turn(iter(body)), status_code=status, headers=headers, media_type=media_type
    )


class CutShortOnBadGzip(StreamingResponse):
    """A streamed download that, should the stored gzip it decompresses turn out bad after the
    headers have gone (``_gunzip`` logs it), ends without its last piece: the server then closes
    the connection, and the client sees a body cut short rather than one that seems whole."""

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UndecodablePayload:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _media_type(found: Download, version: ApiVersion) -> str:
    stored = found.message.meta.content_type
    if version is ApiVersion.V2 and found.message.total_chunks == 1 and stored:
        return stored
    return "application/octet-stream"


def _negotiate_body(
    found: Download, stream: Iterator[bytes], request: Request, compress_plain: bool, version: ApiVersion
) -> tuple[Iterable[bytes], str, int | None]:
    """(body, content-encoding, length) per spec §6.4: gzip passes through or is undone per chunk."""
    assert found.chunk is not None
    gzip_ok = accepts_gzip(request.headers.get("accept-encoding"))
    if found.message.meta.content_encoding == "gzip":
        if gzip_ok:
            return stream, "gzip", found.chunk.size
        # the first piece now: bytes that are not gzip at all are refused before any header
        return _started(_gunzip(stream, found)), "", None
    if gzip_ok and compress_plain and version is ApiVersion.V2:
        return _gzip(stream), "gzip", None
    return stream, "", found.chunk.size


def _must_gunzip(found: Download, request: Request) -> bool:
    return found.message.meta.content_encoding == "gzip" and not accepts_gzip(
        request.headers.get("accept-encoding")
    )


def _started(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """``pieces`` with its first one made now (errors in it raised here)."""
    first = next(pieces, None)
    return pieces if first is None else itertools.chain((first,), pieces)


def _gunzip(stream: Iterator[bytes], found: Download) -> Iterator[bytes]:
    """Undo gzip in bounded steps (a decompression bomb cannot blow up memory).

    A gzip file may hold several members one after another (RFC 1952 §2.2, ``cat a.gz b.gz``);
    each is decoded in turn. Bytes after a member that do not start another one are ignored,
    as gzip(1) ignores trailing garbage. Stored bytes that are not gzip, or end before their
    stream does (kept before uploads were checked), raise ``UndecodablePayload``, logged here.
    """
    try:
        yield from _inflate(stream)
    except (zlib.error, EOFError) as exc:
        message_id = found.message.message_id
        log.error(
            "message %s chunk %d: stored gzip cannot be decompressed (%s)", message_id, found.chunk_no, exc
        )
        raise UndecodablePayload(message_id=message_id) from None


def _inflate(stream: Iterator[bytes]) -> Iterator[bytes]:
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
    held = b""  # bytes after a finished member: too few yet to tell whether another one starts
    fed = False
    for piece in stream:
        data, held, fed = held + piece, b"", fed or bool(piece)
        while data:
            if inflater.eof:
                if len(data) < len(GZIP_MAGIC):
                    held = data
                    break
                if not data.startswith(GZIP_MAGIC):
                    return
                inflater = zlib.decompressobj(wbits=47)
            out = inflater.decompress(data, GUNZIP_STEP)
            if out:
                yield out
            data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
    tail = inflater.flush()
    if tail:
        yield tail
    if fed and not inflater.eof:
        raise EOFError("the gzip stream ends early")


def _gzip(stream: Iterator[bytes]) -> Iterator[bytes]:
    deflater = zlib.compressobj(6, zlib.DEFLATED, 31)
    for piece in stream:
        data = deflater.compress(piece)
        if data:
            yield data
    yield deflater.flush()


@router.put("/messageexchange/{mailbox}/inbox/{message_id}/status/acknowledged")
async def acknowledge(request: Request, mailbox: str, message_id: str) -> Response:
    services = get_container(request)
    credentials = await services.auth.verify_async(
        request.headers.get("authorization"), mailbox, peer_of(request)
    )
    # the token is spent and the message acknowledged in one group-commit job
    work = partial(services.receiving.acknowledge_in, message_id=message_id)
    wanted = await services.auth.write_as(credentials, work)
    if version_of(request) is ApiVersion.V2:
        return Response(status_code=200)
    return JSONResponse({"messageId": wanted})
