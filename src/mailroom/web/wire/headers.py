"""Every ``Mex-*`` header: request headers → SendRequest, Message → response headers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from mailroom.domain.messages import ChunkRange, Message, Metadata, parse_chunk_range, parse_flag
from mailroom.errors import (
    BadRequest,
    MalformedControlFile,
    SendRejected,
    UnsupportedEncoding,
    ValidationFailed,
)
from mailroom.services.sending import SendRequest
from mailroom.settings import DEFAULT_HEADER_LIMITS, Settings

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CHECKSUM = re.compile(r"^[A-Za-z0-9\s:\-/]*$")
_URL_CHECKED = ("mex-to", "mex-workflowid", "mex-content-checksum")

#: The string headers of a send, with the Metadata field each one fills.
SEND_TEXT_HEADERS = {
    "mex-subject": "subject",
    "mex-localid": "local_id",
    "mex-partnerid": "partner_id",
    "mex-filename": "file_name",
    "mex-content-checksum": "checksum",
}


@dataclass(frozen=True, slots=True)
class Seen:
    """A request's headers read once: a Starlette ``Headers`` decodes every header on each
    ``items()`` and scans them all on every lookup, and a send looks up a couple of dozen names."""

    #: each header's first value
    first: dict[str, str]
    #: the Mex headers with a control character in any of their copies
    controlled: list[str]


def seen(headers: Mapping[str, str] | Seen) -> Seen:
    if isinstance(headers, Seen):
        return headers
    first: dict[str, str] = {}
    controlled: list[str] = []
    for name, value in headers.items():
        if name.startswith("mex-") and _CONTROL.search(value):
            controlled.append(name)
        first.setdefault(name, value)
    return Seen(first, controlled)


def check_headers(headers: Mapping[str, str] | Seen, settings: Settings) -> None:
    """Length limits, control characters and URLs, as mesh-sandbox validates every Mex header
    (control characters in every copy of a repeated header)."""
    read = seen(headers)
    values = read.first
    for name, limit in settings.header_limits.items():
        value = values.get(name)
        if value is not None and len(value) > limit:
            raise ValidationFailed(
                "header",
                name,
                f"String should have at most {limit} characters",
                kind="string_too_long",
                value=value[:limit],
            )
    if read.controlled or any(
        values.get(name, "").strip().lower().startswith(("http://", "https://")) for name in _URL_CHECKED
    ):
        raise MalformedControlFile()


def content_encoding(headers: Mapping[str, str]) -> str:
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "gzip"):
        raise UnsupportedEncoding()
    return encoding


def required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise ValidationFailed("header", name, "Field required", kind="missing")
    return value


def parse_send(headers: Mapping[str, str], settings: Settings) -> SendRequest:
    """A new message's headers, checked in mesh-sandbox's order (after authentication):
    missing required headers first (FastAPI validation), then lengths, control characters, URLs."""
    read = seen(headers)
    headers = read.first
    recipient = required(headers, "mex-to").strip().upper()
    workflow_id = required(headers, "mex-workflowid").strip()
    check_headers(read, settings)
    checksum = headers.get("mex-content-checksum", "")
    if not _CHECKSUM.match(checksum):
        raise BadRequest("Invalid checksum", event="SEND", code="Invalid checksum")
    if not recipient:
        raise BadRequest("TO_DTS missing", event="SEND", code="08")
    encoding = content_encoding(headers)
    chunks = _first_chunk_range(headers.get("mex-chunk-range"), settings.max_chunks)
    text = {field: headers.get(name, "") for name, field in SEND_TEXT_HEADERS.items()}
    meta = Metadata(
        workflow_id=workflow_id,
        content_type=_content_type(headers, settings),
        content_encoding=encoding,
        encrypted=parse_flag(headers.get("mex-content-encrypted")),
        compressed=parse_flag(headers.get("mex-content-compressed")),
        **text,
    )
    return SendRequest(
        recipient_id=recipient, sender_claim=headers.get("mex-from", "").strip(), chunks=chunks, meta=meta
    )


def _content_type(headers: Mapping[str, str], settings: Settings) -> str:
    """``Mex-Content-Type``, else the HTTP ``Content-Type``, which is held to the same limit
    (the stored column has room for that many characters and no more)."""
    if headers.get("mex-content-type"):
        return headers["mex-content-type"]
    value = headers.get("content-type", "")
    limit = settings.header_limits.get("mex-content-type", DEFAULT_HEADER_LIMITS["mex-content-type"])
    if len(value) > limit:
        raise ValidationFailed(
            "header",
            "content-type",
            f"String should have at most {limit} characters",
            kind="string_too_long",
            value=value[:limit],
        )
    return value


def _first_chunk_range(raw: str | None, max_chunks: int) -> ChunkRange:
    if raw is None or not raw.strip():
        return ChunkRange(1, 1)
    chunks = parse_chunk_range(raw, max_chunks=max_chunks)
    if chunks is None or chunks.number != 1:
        raise SendRejected("Invalid chunk values in mex-Chunk-Range", code="InvalidHeaderChunks")
    return chunks


def parse_chunk_upload(
    headers: Mapping[str, str], chunk_no: int, settings: Settings, message_id: str
) -> tuple[ChunkRange, str]:
    """Chunk 2..n: the range must be present, valid and name this chunk."""
    check_headers(headers, settings)
    chunks = parse_chunk_range(headers.get("mex-chunk-range"), max_chunks=settings.max_chunks)
    if chunks is None or chunks.number != chunk_no:
        raise SendRejected(
            "Invalid chunk values in mex-Chunk-Range", code="InvalidHeaderChunks", message_id=message_id
        )
    return chunks, content_encoding(headers)


# -- responses ---------------------------------------------------------------------------------


def mesh_time(value: datetime | None) -> str:
    return value.strftime("%Y%m%d%H%M%S") if value else ""


def status_headers(message: Message) -> dict[str, str]:
    detail = message.detail
    if not message.is_report:
        if message.status.value == "error" and detail.code:
            return {
                "mex-statuscode": detail.code,
                "mex-statusevent": detail.event,
                "mex-statusdescription": detail.description,
                "mex-statussuccess": "ERROR",
                "mex-statustimestamp": mesh_time(message.status_at),
            }
        return {
            "mex-statuscode": "00",
            "mex-statusevent": "TRANSFER",
            "mex-statusdescription": "Transferred to recipient mailbox",
            "mex-statussuccess": "SUCCESS",
            "mex-statustimestamp": mesh_time(message.accepted_at),
        }
    return {
        "mex-linkedmsgid": detail.linked_message_id,
        "mex-statuscode": detail.code,
        "mex-statusevent": detail.event,
        "mex-statusdescription": detail.description,
        "mex-statussuccess": "ERROR",
        "mex-statustimestamp": mesh_time(message.status_at),
    }


def message_headers(message: Message, chunk_no: int) -> dict[str, str]:
    """The full header set of a download or HEAD; empty values are left out."""
    meta = message.meta
    total = message.total_chunks
    headers = {
        "mex-from": message.sender.mailbox_id,
        "mex-to": message.recipient.mailbox_id,
        "mex-workflowid": meta.workflow_id,
        "mex-chunk-range": f"{chunk_no}:{total}" if total else "1:0",
        "mex-total-chunks": str(total),
        "mex-addresstype": "ALL",
        "mex-localid": meta.local_id,
        "mex-partnerid": meta.partner_id,
        "mex-filename": message.file_name_or_default,
        "mex-subject": meta.subject,
        "mex-version": "1.0",
        "mex-messagetype": message.message_type.value,
        "mex-messageid": message.message_id,
        "mex-content-compressed": "Y" if meta.compressed else "",
        "mex-content-encrypted": "Y" if meta.encrypted else "",
        "mex-content-checksum": meta.checksum,
        "mex-content-type": meta.content_type,
        "last-modified": format_datetime(message.status_at, usegmt=True),
        **status_headers(message),
    }
    return {name: value for name, value in headers.items() if value}
