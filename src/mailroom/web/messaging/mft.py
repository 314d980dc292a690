"""The MFT Gateway face (seed 004): ``/message/...``.

Ids in paths come with or without MFT Gateway's angle brackets, URL-encoded or not (the path is
decoded before routing). Lists answer records with a ``total`` (``records.mft_record``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mailroom import errors
from mailroom.domain.envelopes import Box, Compose, Face
from mailroom.services.messaging import Link
from mailroom.web.messaging.auth import Messaging, Principal
from mailroom.web.messaging.errors import MftRoute
from mailroom.web.messaging.inputs import json_body, list_query, message_id, openapi_body
from mailroom.web.messaging.records import mft_record
from mailroom.web.messaging.upload import stage_body

router = APIRouter(route_class=MftRoute, tags=["JSON API: MFT Gateway"])

#: Query values the lists read themselves (described for the OpenAPI document).
LIST_PARAMS = [
    ("sortDir", "asc or desc (default desc)"),
    ("pageLength", "1 to 100 (default 10)"),
    ("pageOffset", "0 or more (default 0)"),
    ("stationAS2Id", "primary filter: your own mailbox id (alias stationIdentifier)"),
    ("partnerAS2Id", "secondary filter: the other mailbox (alias partnerIdentifier)"),
    ("as2MessageId", "secondary filter: a message id (alias identifier)"),
    ("subject", "secondary filter: part of the subject"),
]
MOST_RECIPIENTS_HEADER = 8192


def _described(*, inbox: bool) -> dict[str, Any]:
    params = (
        [*LIST_PARAMS, ("fetchAll", "true: include messages this API marked read")] if inbox else LIST_PARAMS
    )
    return {
        "parameters": [
            {"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
            for n, d in params
        ]
    }


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def link_url(request: Request, link: Link) -> str:
    return link.url or f"{base_url(request)}/files/{link.token}"


def recipients_of(header: str | None) -> list[str]:
    if header is None or not header.strip():
        raise errors.ValidationFailed("header", "AS2-To", "AS2-To (the recipient mailbox) is needed")
    if len(header) > MOST_RECIPIENTS_HEADER:
        raise errors.ValidationFailed("header", "AS2-To", "AS2-To is too long")
    found = [part.strip().strip("<>").strip() for part in header.split(",")]
    return [part for part in found if part]


# -- sending --------------------------------------------------------------------------------------


@router.post(
    "/message/submit",
    status_code=202,
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
async def submit(
    request: Request,
    principal: Principal,
    service: Messaging,
    as2_from: Annotated[str | None, Header(alias="AS2-From", max_length=300)] = None,
    as2_to: Annotated[str | None, Header(alias="AS2-To")] = None,
    subject: Annotated[str, Header(alias="Subject", max_length=1000)] = "",
    attachment_name: Annotated[str | None, Header(alias="Attachment-Name", max_length=1000)] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    """Send a message: the body is one attachment, or a form with one file per part."""
    if as2_from is not None and as2_from.strip().strip("<>").upper() != principal.mailbox_id.upper():
        raise errors.Forbidden("AS2-From must be the token's own mailbox")
    recipients = recipients_of(as2_to)
    submitted = (
        await service.replay(principal, idempotency_key, recipients, subject) if idempotency_key else None
    )
    if submitted is None:
        compose = Compose(
            recipients=recipients,
            subject=subject,
            body="",
            attachment_ids=[],
            idempotency_key=idempotency_key or None,
            face=Face.MFT,
        )
        service.check_submit(principal, compose)  # before a byte is stored: a refusal leaves none
        staged = await stage_body(request, service, principal, name=attachment_name, most=10_000)
        compose = replace(compose, attachment_ids=[a.attachment_id for a in staged])
        submitted = await service.submit(principal, compose)
    envelope_id = submitted.envelope_id
    return JSONResponse(
        {
            "message": "Message queued successfully",
            "as2MessageId": envelope_id,
            "messageIdentifier": envelope_id,
        },
        status_code=202,
        headers={"link": f"{base_url(request)}/message/outbox/{envelope_id}"},
    )


# -- lists ----------------------------------------------------------------------------------------


@router.get("/message/inbox", openapi_extra=_described(inbox=True))
async def inbox(request: Request, principal: Principal, service: Messaging) -> dict[str, Any]:
    page = await service.inbox(principal, list_query(request.query_params, inbox=True))
    return {"total": page.total, "messages": [mft_record(v) for v in page.items]}


async def _outbox(request: Request, principal: Principal, service: Messaging, box: Box) -> dict[str, Any]:
    page = await service.outbox(principal, box, list_query(request.query_params, inbox=False))
    return {"total": page.total, "messages": [mft_record(v) for v in page.items]}


@router.get("/message/outbox", openapi_extra=_described(inbox=False))
async def outbox(request: Request, principal: Principal, service: Messaging) -> dict[str, Any]:
    return await _outbox(request, principal, service, Box.SENT)


@router.get("/message/outbox/queued", openapi_extra=_described(inbox=False))
async def queued(request: Request, principal: Principal, service: Messaging) -> dict[str, Any]:
    return await _outbox(request, principal, service, Box.QUEUED)


@router.get("/message/outbox/failed", openapi_extra=_described(inbox=False))
async def failed(request: Request, principal: Principal, service: Messaging) -> dict[str, Any]:
    return await _outbox(request, principal, service, Box.FAILED)


@router.get("/message/outbox/incomplete", openapi_extra=_described(inbox=False))
async def incomplete(request: Request, principal: Principal, service: Messaging) -> dict[str, Any]:
    return await _outbox(request, principal, service, Box.INCOMPLETE)


# -- one message ----------------------------------------------------------------------------------


class IdList(BaseModel):
    """The ids to delete, under either generation's name."""

    model_config = ConfigDict(extra="ignore")
    as2MessageIds: list[Annotated[str, Field(max_length=300)]] | None = Field(default=None, max_length=1000)
    messageIdentifiers: list[Annotated[str, Field(max_length=300)]] | None = Field(
        default=None, max_length=1000
    )

    def ids(self) -> list[str]:
        found = self.messageIdentifiers if self.messageIdentifiers is not None else self.as2MessageIds
        if found is None:
            raise errors.ValidationFailed("body", "messageIdentifiers", "as2MessageIds or messageIdentifiers")
        return [m.strip().strip("<>") for m in found]


@router.post("/message/inbox/delete", openapi_extra=openapi_body(IdList))
async def delete_received_batch(request: Request, principal: Principal, service: Messaging) -> dict[str, Any]:
    wanted = await json_body(request, IdList)
    return {"deleted": await service.delete_received(principal, wanted.ids())}


@router.post("/message/outbox/delete", openapi_extra=openapi_body(IdList))
async def delete_sent_batch(request: Request, principal: Principal, service: Messaging) -> dict[str, Any]:
    """Each id that is one of yours and deleted is named in ``deleted``; others are left out."""
    wanted = await json_body(request, IdList)
    deleted = []
    for raw in dict.fromkeys(wanted.ids()):
        try:
            deleted.append(await service.delete_sent(principal, raw))
        except errors.NotFound:
            continue
    return {"deleted": deleted}


@router.get("/message/inbox/{message}")
async def received(
    message: str,
    principal: Principal,
    service: Messaging,
    markAsRead: bool = True,
) -> dict[str, Any]:
    view = await service.received(principal, message_id(message), mark_read=markAsRead)
    return mft_record(view)


@router.post("/message/inbox/{message}/markUnread")
async def mark_unread(message: str, principal: Principal, service: Messaging) -> dict[str, Any]:
    await service.set_read(principal, message_id(message), False)
    return {"message": "Message marked as unread"}


@router.delete("/message/inbox/{message}")
async def delete_received(message: str, principal: Principal, service: Messaging) -> dict[str, Any]:
    wanted = message_id(message)
    deleted = await service.delete_received(principal, [wanted])
    if not deleted:
        raise errors.NotFound("No such message in this inbox", message_id=wanted)
    return {"deleted": deleted[0]}


@router.get("/message/outbox/{message}")
async def sent(message: str, principal: Principal, service: Messaging) -> dict[str, Any]:
    return mft_record(await service.sent(principal, message_id(message)))


@router.delete("/message/outbox/{message}")
async def delete_sent(message: str, principal: Principal, service: Messaging) -> dict[str, Any]:
    return {"deleted": await service.delete_sent(principal, message_id(message))}


# -- files ----------------------------------------------------------------------------------------


async def _attachments(
    request: Request, principal: Principal, service: Messaging, message: str, *, incoming: bool
) -> dict[str, Any]:
    links = await service.attachment_links(principal, message_id(message), incoming=incoming)
    return {
        "total": len(links),
        "attachments": [{"name": k.name, "url": link_url(request, k)} for k in links],
    }


@router.get("/message/inbox/{message}/attachments")
async def received_attachments(
    request: Request, message: str, principal: Principal, service: Messaging
) -> dict[str, Any]:
    return await _attachments(request, principal, service, message, incoming=True)


@router.get("/message/outbox/{message}/attachments")
async def sent_attachments(
    request: Request, message: str, principal: Principal, service: Messaging
) -> dict[str, Any]:
    return await _attachments(request, principal, service, message, incoming=False)


@router.get("/message/inbox/{message}/mdn")
async def received_receipt(
    request: Request, message: str, principal: Principal, service: Messaging
) -> dict[str, Any]:
    """The receipt Mailroom issued for a message you received."""
    link = await service.receipt_link(principal, message_id(message), incoming=True)
    return {"url": link_url(request, link)}


@router.get("/message/outbox/{message}/mdn")
async def sent_receipt(
    request: Request,
    message: str,
    principal: Principal,
    service: Messaging,
    recipient: Annotated[
        str | None,
        Query(
            max_length=300,
            description="A recipient's mailbox id (any case): only that recipient's receipt; 404 "
            "if it is not a recipient or has not retrieved the message.",
        ),
    ] = None,
) -> dict[str, Any]:
    """The receipts for a message you sent, once recipients have retrieved it: `url` is the
    first (in recipient order), `receipts` one per recipient who has retrieved it."""
    receipts = await service.sent_receipts(principal, message_id(message), recipient=recipient)
    return {
        "url": link_url(request, receipts[0].link),
        "receipts": [{"recipient": r.recipient_id, "url": link_url(request, r.link)} for r in receipts],
    }
