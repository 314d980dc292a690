"""Sending (message and chunks), tracking and the rich outbox."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mailroom.errors import MailroomError, MessageNotFound, PayloadTooLarge, ValidationFailed
from mailroom.ids import normalise_message_id, require_message_id
from mailroom.web.deps import (
    ChunkNumber,
    Principal,
    Services,
    Version,
    get_container,
    peer_of,
    version_of,
)
from mailroom.web.uploads import in_upload_thread, store_streamed
from mailroom.web.wire import headers as mex
from mailroom.web.wire.media import V2_TYPE, ApiVersion
from mailroom.web.wire.paging import rich_page
from mailroom.web.wire.schemas import tracking_v1, tracking_v2

router = APIRouter()

#: Bodies up to this size are read in one go; larger ones stream to storage piece by piece.
SMALL_BODY = 1024 * 1024


def declared_size(request: Request, max_bytes: int, message_id: str | None = None) -> int | None:
    """The Content-Length, refused with 413 when over ``max_bytes``; None when not given."""
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isascii() and declared.isdigit() else None
    if size is not None and size > max_bytes:
        raise PayloadTooLarge(message_id=message_id)
    return size


@router.post("/messageexchange/{mailbox}/outbox", status_code=202)
async def send_message(request: Request, mailbox: str) -> JSONResponse:
    """Verify the token and check the headers before reading any of the body (a caller without a
    valid token must not make the server wait for or buffer anything), then store it.

    A body small enough to live in its row is read (uvicorn has buffered that much already),
    then the token is spent and the message recorded in one group-commit job; a replayed token
    is refused there, before anything is written. Larger bodies spend the token first, then
    stream to storage."""
    services = get_container(request)
    credentials = await services.auth.verify_async(
        request.headers.get("authorization"), mailbox, peer_of(request)
    )
    try:
        send = mex.parse_send(request.headers, services.settings)
        size = declared_size(request, services.settings.max_chunk_bytes)
    except MailroomError:
        await services.auth.spend_async(credentials)  # a replay is refused as such
        raise
    body: bytes | None = None
    if size is not None and services.sending.records_in_row(size):
        body = await request.body()
        if services.sending.records_in_row(len(body)):
            work = partial(services.sending.send_in, request=send, body=body)
            message = await services.auth.write_as(credentials, work)
            return _accepted(request, message.message_id)
    await services.auth.spend_async(credentials)
    if body is None and size is not None and size <= SMALL_BODY:
        body = await request.body()
    if body is not None:
        message = await run_in_threadpool(services.sending.send, credentials.principal, send, [body])
    else:
        plan = await run_in_threadpool(services.sending.plan_send, credentials.principal, send)
        owner = credentials.principal.mailbox_id
        message = await store_streamed(request, owner, services.sending.store_first_chunk, plan)
    return _accepted(request, message.message_id)


def _accepted(request: Request, message_id: str) -> JSONResponse:
    key = "message_id" if version_of(request) is ApiVersion.V2 else "messageID"
    return JSONResponse({key: message_id}, status_code=202)


@router.post("/messageexchange/{mailbox}/outbox/{message_id}/{chunk_no}", status_code=202)
async def send_chunk(
    request: Request,
    mailbox: str,
    message_id: str,
    chunk_no: ChunkNumber,
    principal: Principal,
    services: Services,
    version: Version,
) -> JSONResponse:
    settings = services.settings
    wanted = normalise_message_id(message_id) or message_id.upper()
    chunk, encoding = mex.parse_chunk_upload(request.headers, chunk_no, settings, wanted)
    if normalise_message_id(message_id) is None:
        raise MessageNotFound(message_id=wanted)
    plan = await run_in_threadpool(services.sending.plan_chunk, principal, wanted, chunk, encoding)
    size = declared_size(request, plan.max_bytes, wanted)
    owner = principal.mailbox_id
    if size is not None and size <= SMALL_BODY:
        body = [await request.body()]
        if services.sending.keeps_in_row(len(body[0])):  # no file to write: no upload slot
            await run_in_threadpool(services.sending.store_chunk, principal, plan, body)
        else:
            await in_upload_thread(request, owner, services.sending.store_chunk, principal, plan, body)
    else:
        await store_streamed(request, owner, services.sending.store_chunk, principal, plan)
    if version is ApiVersion.V2:
        return JSONResponse({"message_id": wanted}, status_code=202)
    return JSONResponse({"messageID": wanted, "blockID": chunk_no}, status_code=202)


@router.get("/messageexchange/{mailbox}/outbox/tracking")
def track_message(
    request: Request, mailbox: str, principal: Principal, services: Services, version: Version
) -> JSONResponse:
    raw = request.query_params.get("messageID")
    if raw is None:
        raise ValidationFailed("query", "messageID", "Field required", kind="missing")
    message = services.tracking.by_message_id(principal, require_message_id(raw))
    if version is ApiVersion.V2:
        return JSONResponse(tracking_v2(message), media_type=V2_TYPE)
    return JSONResponse(tracking_v1(message))


@router.get("/messageexchange/{mailbox}/outbox/tracking/{local_id}")
def track_local_id(mailbox: str, local_id: str, principal: Principal, services: Services) -> Response:
    message = services.tracking.by_local_id(principal, local_id)
    return JSONResponse(tracking_v1(message))


@router.get("/messageexchange/{mailbox}/outbox/rich")
def rich_outbox(request: Request, mailbox: str, principal: Principal, services: Services) -> JSONResponse:
    body: dict[str, Any] = rich_page(request, principal, services, outbox=True)
    return JSONResponse(body, media_type=V2_TYPE)
