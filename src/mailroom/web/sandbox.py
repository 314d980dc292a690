"""mesh-sandbox's unauthenticated test-control endpoints (spec §5.14); mounted only with --sandbox."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mailroom.domain.messages import StatusDetail
from mailroom.errors import ValidationFailed
from mailroom.ids import require_message_id
from mailroom.services.sandbox import ReportRequest
from mailroom.web.deps import Services
from mailroom.web.wire.schemas import mailbox_details, message_details

router = APIRouter()
PREFIXES = ("", "/messageexchange")
MAX_BODY = 64 * 1024
_HEADER_SAFE = re.compile(r"[\x20-\x7e\xa0-\xff]*")


async def _read_capped(request: Request) -> bytes:
    """The body, refused as soon as it is over MAX_BODY (declared or streamed): no authentication
    guards these endpoints, so an endless body must not be read into memory."""
    too_large = ValidationFailed("body", "body", "body too large")
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    raw = bytearray()
    async for piece in request.stream():
        raw += piece
        if len(raw) > MAX_BODY:
            raise too_large
    return bytes(raw)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await _read_capped(request)
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise ValidationFailed("body", "body", "JSON decode error", kind="json_invalid") from None
    if not isinstance(data, dict):
        raise ValidationFailed("body", "body", "Input should be an object", kind="dict_type")
    return data


def _text(data: dict[str, Any], name: str, default: str | None = None) -> str:
    value = data.get(name, default)
    if value is None:
        raise ValidationFailed("body", name, "Field required", kind="missing")
    if not isinstance(value, str | int):
        raise ValidationFailed("body", name, "Input should be a valid string", kind="string_type")
    text = str(value)
    if not _HEADER_SAFE.fullmatch(text):  # it comes back in Mex-* response headers
        raise ValidationFailed(
            "body", name, "String should be printable Latin-1 text", kind="string_pattern_mismatch"
        )
    return text


def reset_all(services: Services) -> JSONResponse:
    services.sandbox.reset()
    return JSONResponse({"message": "all mailboxes reset"})


def reset_mailbox(mailbox: str, services: Services) -> JSONResponse:
    services.sandbox.reset(mailbox.upper())
    return JSONResponse({"message": f"mailbox {mailbox} reset"})


async def add_report(request: Request, services: Services) -> JSONResponse:
    data = await _json_body(request)
    report = ReportRequest(
        mailbox_id=_text(data, "mailbox_id").upper(),
        code=_text(data, "code"),
        description=_text(data, "description"),
        workflow_id=_text(data, "workflow_id"),
        subject=_text(data, "subject", ""),
        local_id=_text(data, "local_id", ""),
        status=_text(data, "status", "undeliverable"),
        file_name=_text(data, "file_name", ""),
        linked_message_id=_text(data, "linked_message_id", ""),
    )
    message_id = await run_in_threadpool(services.sandbox.inject_report, report)
    return JSONResponse({"message_id": message_id})


async def add_event(message_id: str, request: Request, services: Services) -> Response:
    data = await _json_body(request)
    detail = StatusDetail(
        event=_text(data, "event", ""),
        code=_text(data, "code", ""),
        description=_text(data, "description", ""),
        linked_message_id=_text(data, "linked_message_id", ""),
    )
    await run_in_threadpool(
        services.sandbox.add_event, require_message_id(message_id), _text(data, "status"), detail
    )
    return Response(status_code=200)


def mailbox(mailbox: str, services: Services) -> JSONResponse:
    return JSONResponse(mailbox_details(services.mailboxes.get(mailbox)))


def message(message_id: str, services: Services) -> JSONResponse:
    return JSONResponse(message_details(services.sandbox.message(require_message_id(message_id))))


for _prefix in PREFIXES:
    router.add_api_route(f"{_prefix}/admin/reset", reset_all, methods=["DELETE"])
    router.add_api_route(f"{_prefix}/admin/reset/{{mailbox}}", reset_mailbox, methods=["DELETE"])
    router.add_api_route(f"{_prefix}/admin/message/{{message_id}}/event", add_event, methods=["POST"])
    router.add_api_route(f"{_prefix}/admin/mailbox/{{mailbox}}", mailbox, methods=["GET"])
    router.add_api_route(f"{_prefix}/admin/message/{{message_id}}", message, methods=["GET"])
router.add_api_route("/messageexchange/admin/report", add_report, methods=["POST"])
router.add_api_route("/messageexchange/mailbox/{mailbox}", mailbox, methods=["GET"])
