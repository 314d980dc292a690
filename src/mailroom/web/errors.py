"""Domain errors → MESH v1/v2 responses, in one place. Unexpected errors get a generic body."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from mailroom import errors
from mailroom.web.wire.media import V2_TYPE, ApiVersion, negotiate

log = logging.getLogger(__name__)

GENERIC_MESSAGE = "An internal error occurred.\n\nPlease contact support."

# Checked in order: the first class the error is an instance of gives the status.
STATUS: list[tuple[type[errors.MailroomError], int]] = [
    (errors.AuthenticationFailed, 403),
    (errors.ValidationFailed, 400),
    (errors.BadRequest, 400),
    (errors.MalformedControlFile, 400),
    (errors.NotFound, 404),
    (errors.Forbidden, 403),
    (errors.Gone, 410),
    (errors.UndecodablePayload, 406),
    (errors.Locked, 423),
    (errors.ChunkOutOfRange, 406),
    (errors.SendRejected, 417),
    (errors.UnsupportedEncoding, 422),
    (errors.PayloadTooLarge, 413),
    (errors.Conflict, 409),
    (errors.Ambiguous, 300),
]
#: Errors mesh-sandbox answers with its generic body rather than an error triple.
GENERIC_ERRORS = (errors.Locked, errors.ChunkOutOfRange)


def status_of(exc: errors.MailroomError) -> int:
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 500)


def mesh_error_body(exc: errors.MailroomError, version: ApiVersion) -> dict[str, Any]:
    if version is ApiVersion.V2:
        body: dict[str, Any] = {}
        if exc.message_id:
            body["message_id"] = exc.message_id
        body["detail"] = [{"event": exc.event, "code": exc.code, "msg": exc.description}]
        return body
    body = {"messageID": exc.message_id} if exc.message_id else {}
    body.update(errorEvent=exc.event, errorCode=exc.code, errorDescription=exc.description)
    return body


def validation_body(exc: errors.ValidationFailed) -> dict[str, Any]:
    item: dict[str, Any] = {"type": exc.kind, "loc": [exc.location, exc.name], "msg": exc.description}
    if exc.value is not None:
        item["input"] = exc.value
    return {"detail": [item]}


def mesh_error_response(request: Request, exc: errors.MailroomError) -> JSONResponse:
    status = status_of(exc)
    if isinstance(exc, errors.ValidationFailed):
        return JSONResponse(validation_body(exc), status_code=status)
    if isinstance(exc, GENERIC_ERRORS):
        return JSONResponse({"message": GENERIC_MESSAGE}, status_code=status)
    version = negotiate(request.headers.get("accept"))
    media = V2_TYPE if version is ApiVersion.V2 else "application/json"
    return JSONResponse(mesh_error_body(exc, version), status_code=status, media_type=media)


async def _domain_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.MailroomError)
    return mesh_error_response(request, exc)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {key: value for key, value in item.items() if key in {"type", "loc", "msg", "input"}}
        for item in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=400)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    internal_id = uuid.uuid4().hex
    log.exception("unexpected error %s on %s %s", internal_id, request.method, request.url.path)
    return JSONResponse({"message": GENERIC_MESSAGE, "internal_id": internal_id}, status_code=500)


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _disconnect_handler(request: Request, exc: Exception) -> JSONResponse:
    # The client went away mid-body: nothing was stored; nobody will read this answer.
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "client disconnected"}, status_code=400)


Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]

#: Every error the faces answer for, and its handler; the most specific class wins.
HANDLERS: dict[type[Exception], Handler] = {
    ClientDisconnect: _disconnect_handler,
    errors.MailroomError: _domain_handler,
    RequestValidationError: _validation_handler,
    HTTPException: _http_handler,
    Exception: _unexpected_handler,
}


def register(app: FastAPI) -> None:
    for kind, handler in HANDLERS.items():
        app.add_exception_handler(kind, handler)


async def respond(request: Request, exc: Exception) -> JSONResponse:
    """The response ``register``'s handlers give ``exc`` (for requests served outside FastAPI's
    routing, see ``web.hot_routes``)."""
    handler = next(HANDLERS[kind] for kind in type(exc).__mro__ if kind in HANDLERS)
    return await handler(request, exc)
