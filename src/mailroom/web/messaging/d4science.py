"""The D4Science face (seed 002): ``/2/messages/...`` and ``/2/attachments``, in the envelope
``{"success", "message", "result"}``.

Beyond the seed: the lists take ``limit`` (1-1000, default 1000) and ``offset``; without them a
client sees what it saw before, its newest 1000 messages. Attachments are uploaded beforehand
with ``POST /2/attachments`` (a streamed body; D4Science's own come from its workspace) and
named by id in ``attachmentIds``. ``write-message`` answers 200, as the documentation says (the
real code answers 201).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mailroom import errors
from mailroom.domain.envelopes import Box, Compose, Face, ListQuery
from mailroom.web.messaging.auth import Messaging, Principal
from mailroom.web.messaging.errors import D4ScienceRoute
from mailroom.web.messaging.inputs import boolean, form_fields, json_body, message_id, openapi_body
from mailroom.web.messaging.records import d4science_record
from mailroom.web.messaging.upload import stage_body

router = APIRouter(prefix="/2", route_class=D4ScienceRoute, tags=["JSON API: D4Science"])

MOST_LISTED = 1000


def result(value: Any, message: str | None = None) -> dict[str, Any]:
    return {"success": True, "message": message, "result": value}


class Recipient(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=300)


class WriteMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    subject: str = Field(min_length=1, max_length=1000)
    body: str = Field(min_length=1)
    recipients: list[Recipient] = Field(min_length=1, max_length=10_000)
    attachmentIds: list[Annotated[str, Field(max_length=300)]] = Field(
        default_factory=list, max_length=10_000
    )


@router.post("/messages/write-message", openapi_extra=openapi_body(WriteMessage))
async def write_message(request: Request, principal: Principal, service: Messaging) -> dict[str, Any]:
    settings = request.app.state.container.settings
    wanted = await json_body(request, WriteMessage, limit=settings.max_body_bytes * 6 + 1024 * 1024)
    compose = Compose(
        recipients=[r.id for r in wanted.recipients],
        subject=wanted.subject,
        body=wanted.body,
        attachment_ids=wanted.attachmentIds,
        face=Face.D4SCIENCE,
    )
    submitted = await service.submit(principal, compose)
    skipped = f"skipped unknown recipients: {', '.join(submitted.skipped)}" if submitted.skipped else None
    return result(submitted.envelope_id, skipped)


Limit = Annotated[int, Query(ge=1, le=MOST_LISTED)]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]


@router.get("/messages/get-received-messages")
async def received(
    principal: Principal, service: Messaging, limit: Limit = MOST_LISTED, offset: Offset = 0
) -> dict[str, Any]:
    page = await service.inbox(
        principal, ListQuery(descending=True, limit=limit, offset=offset, fetch_all=True)
    )
    return result([d4science_record(v) for v in page.items])


@router.get("/messages/get-sent-messages")
async def sent(
    principal: Principal, service: Messaging, limit: Limit = MOST_LISTED, offset: Offset = 0
) -> dict[str, Any]:
    query = ListQuery(descending=True, limit=limit, offset=offset)
    page = await service.outbox(principal, Box.SENT, query)
    return result([d4science_record(v) for v in page.items])


@router.post(
    "/messages/set-message-read",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["messageId"],
                        "properties": {"messageId": {"type": "string"}, "read": {"type": "boolean"}},
                    }
                }
            },
        }
    },
)
async def set_message_read(request: Request, principal: Principal, service: Messaging) -> dict[str, Any]:
    fields = await form_fields(request)
    raw = fields.get("messageId")
    if not raw:
        raise errors.ValidationFailed("body", "messageId", "messageId is needed")
    read = boolean(fields, "read", True)
    wanted = message_id(raw)
    await service.set_read(principal, wanted, read)
    return result(wanted)


@router.post(
    "/attachments",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    },
)
async def upload_attachment(
    request: Request,
    principal: Principal,
    service: Messaging,
    name: Annotated[str | None, Query(max_length=1000)] = None,
    header_name: Annotated[str | None, Header(alias="Attachment-Name", max_length=1000)] = None,
) -> dict[str, Any]:
    """One attachment, its name from ``name`` (or ``Attachment-Name``, or the form part's)."""
    staged = await stage_body(request, service, principal, name=name or header_name, most=1)
    return result(staged[0].attachment_id)
