"""What the client returns: received messages, delivery reports, tracking and lookup results."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any

REPORT_TYPE = "REPORT"
_MESH_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$")


def iso_time(value: object) -> str | None:
    """A server's time as ISO 8601 (``2024-05-01T12:30:00``, UTC as MESH gives it): MESH's
    ``yyyyMMddHHmmss`` is converted, ISO is kept as it is, anything empty becomes None."""
    text = str(value or "").strip()
    if not text:
        return None
    match = _MESH_TIME.match(text)
    if match:
        year, month, day, hour, minute, second = match.groups()
        return f"{year}-{month}-{day}T{hour}:{minute}:{second}"
    return text


def http_time(value: str | None) -> str | None:
    """An HTTP date (``Last-Modified``) as ISO 8601 in UTC, or None."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat()


def _flag(value: str | None) -> bool:
    return (value or "").strip().upper() in ("Y", "YES", "TRUE", "T", "1")


def mex_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``Mex-*`` headers with the prefix stripped and the name lower-cased."""
    return {name.lower()[4:]: value for name, value in headers.items() if name.lower().startswith("mex-")}


@dataclass(frozen=True)
class Message:
    """A DATA message that was downloaded.

    ``path`` is where it was saved (``download_message`` to a folder); ``body`` is an open
    binary file positioned at the start (``check_and_download()`` without a folder), closed
    once the caller's processing of this message has finished.
    """

    message_id: str
    sender: str | None
    recipient: str | None
    workflow_id: str | None
    file_name: str | None
    local_id: str | None
    subject: str | None
    content_type: str | None
    encrypted: bool
    compressed: bool
    checksum: str | None
    total_chunks: int
    size: int
    headers: Mapping[str, str] = field(repr=False)
    path: Path | None = None
    body: IO[bytes] | None = field(default=None, repr=False, compare=False)

    is_report = False

    def read(self) -> bytes:
        """The whole content (convenience for small messages)."""
        if self.path is not None:
            return self.path.read_bytes()
        if self.body is None:
            raise ValueError("this message was written to a stream the caller owns")
        self.body.seek(0)
        return self.body.read()

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], *, size: int, **extra: Any) -> Message:
        mex = mex_headers(headers)
        return cls(
            message_id=mex.get("messageid", ""),
            sender=mex.get("from"),
            recipient=mex.get("to"),
            workflow_id=mex.get("workflowid"),
            file_name=mex.get("filename"),
            local_id=mex.get("localid"),
            subject=mex.get("subject"),
            content_type=mex.get("content-type"),
            encrypted=_flag(mex.get("content-encrypted")),
            compressed=_flag(mex.get("content-compressed")),
            checksum=mex.get("content-checksum"),
            total_chunks=total_chunks(mex),
            size=size,
            headers=dict(mex),
            **extra,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "message_type": "DATA",
            "message_id": self.message_id,
            "sender": self.sender,
            "recipient": self.recipient,
            "workflow_id": self.workflow_id,
            "file_name": self.file_name,
            "local_id": self.local_id,
            "subject": self.subject,
            "content_type": self.content_type,
            "encrypted": self.encrypted,
            "compressed": self.compressed,
            "checksum": self.checksum,
            "total_chunks": self.total_chunks,
            "size": self.size,
            "path": str(self.path) if self.path else None,
        }


@dataclass(frozen=True)
class Report:
    """A REPORT message: MESH telling the sender that a message was not delivered.

    ``linked_message_id`` is the id of the message it is about (``Mex-LinkedMsgID``); ``code``
    is the MESH status code, e.g. ``14`` (not collected by the recipient within 5 days).
    A report means a message you sent did not reach its recipient: act on it.
    """

    message_id: str
    linked_message_id: str | None
    code: str | None
    event: str | None
    description: str | None
    success: bool
    timestamp: str | None
    workflow_id: str | None
    local_id: str | None
    subject: str | None
    headers: Mapping[str, str] = field(repr=False)
    path: Path | None = None

    is_report = True

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], **extra: Any) -> Report:
        mex = mex_headers(headers)
        return cls(
            message_id=mex.get("messageid", ""),
            linked_message_id=mex.get("linkedmsgid"),
            code=mex.get("statuscode"),
            event=mex.get("statusevent"),
            description=mex.get("statusdescription"),
            success=(mex.get("statussuccess", "").upper() == "SUCCESS"),
            timestamp=mex.get("statustimestamp"),
            workflow_id=mex.get("workflowid"),
            local_id=mex.get("localid"),
            subject=mex.get("subject"),
            headers=dict(mex),
            **extra,
        )

    def summary(self) -> str:
        about = self.linked_message_id or "an unknown message"
        detail = " ".join(part for part in (self.code and f"code {self.code}", self.description) if part)
        return f"NON-DELIVERY REPORT {self.message_id} for message {about}: {detail or 'no detail given'}"

    def to_json(self) -> dict[str, Any]:
        return {
            "message_type": REPORT_TYPE,
            "message_id": self.message_id,
            "linked_message_id": self.linked_message_id,
            "code": self.code,
            "event": self.event,
            "description": self.description,
            "success": self.success,
            "timestamp": self.timestamp,
            "workflow_id": self.workflow_id,
            "local_id": self.local_id,
            "subject": self.subject,
            "path": str(self.path) if self.path else None,
        }


def total_chunks(mex: Mapping[str, str]) -> int:
    """From ``Mex-Total-Chunks``, else the ``n`` of ``Mex-Chunk-Range: k:n`` (default 1)."""
    for text in (mex.get("total-chunks"), mex.get("chunk-range", "1:1").partition(":")[2]):
        if text and text.strip().isdigit():
            return int(text)
    return 1


@dataclass(frozen=True)
class SendResult:
    """A message the server accepted. ``resumed`` is true when an earlier, interrupted attempt
    had already delivered part of it (or all of it: ``recovered``)."""

    message_id: str
    local_id: str
    total_chunks: int
    size: int
    resumed: bool = False
    recovered: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "local_id": self.local_id,
            "total_chunks": self.total_chunks,
            "size": self.size,
            "resumed": self.resumed,
            "recovered": self.recovered,
        }


@dataclass(frozen=True)
class Tracking:
    """Where a sent message is: ``status`` is lower case (uploading, accepted, acknowledged,
    undeliverable, error). ``raw`` is the server's body as it came."""

    message_id: str
    status: str
    local_id: str | None
    recipient: str | None
    workflow_id: str | None
    file_name: str | None
    status_code: str | None
    status_description: str | None
    raw: Mapping[str, Any] = field(repr=False)
    status_event: str | None = None
    uploaded_at: str | None = None
    status_at: str | None = None
    downloaded_at: str | None = None
    expires_at: str | None = None

    @classmethod
    def from_v2(cls, body: Mapping[str, Any]) -> Tracking:
        return cls(
            message_id=str(body.get("message_id", "")),
            status=str(body.get("status", "")).lower(),
            local_id=body.get("local_id"),
            recipient=body.get("recipient"),
            workflow_id=body.get("workflow_id"),
            file_name=body.get("filename"),
            status_code=body.get("status_code"),
            status_description=body.get("status_description"),
            raw=dict(body),
            status_event=body.get("status_event"),
            uploaded_at=iso_time(body.get("upload_timestamp")),
            status_at=iso_time(body.get("status_timestamp")),
            downloaded_at=iso_time(body.get("download_timestamp")),
            expires_at=iso_time(body.get("expiry_time")),
        )

    @classmethod
    def from_v1(cls, body: Mapping[str, Any]) -> Tracking:
        return cls(
            message_id=str(body.get("messageId") or body.get("dtsId") or ""),
            status=str(body.get("status", "")).lower(),
            local_id=body.get("localId") or None,
            recipient=body.get("recipient") or None,
            workflow_id=body.get("workflowId") or None,
            file_name=body.get("fileName") or None,
            status_code=body.get("statusCode") or None,
            status_description=body.get("statusDescription") or None,
            raw=dict(body),
            status_event=body.get("statusEvent") or None,
            uploaded_at=iso_time(body.get("uploadTimestamp")),
            status_at=iso_time(body.get("statusTimestamp")),
            downloaded_at=iso_time(body.get("downloadTimestamp")),
            expires_at=iso_time(body.get("expiryTime")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "status": self.status,
            "local_id": self.local_id,
            "recipient": self.recipient,
            "workflow_id": self.workflow_id,
            "file_name": self.file_name,
            "status_code": self.status_code,
            "status_description": self.status_description,
            "status_event": self.status_event,
            "uploaded_at": self.uploaded_at,
            "status_at": self.status_at,
            "downloaded_at": self.downloaded_at,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True)
class InboxItem:
    """A message waiting in the inbox, described by its headers (``HEAD``) without downloading
    it. ``size`` is the body's size when the server says (one unencoded chunk), else None;
    ``received_at`` is when it reached the inbox (ISO 8601, UTC), if the server says."""

    message_id: str
    message_type: str
    sender: str | None
    workflow_id: str | None
    subject: str | None
    file_name: str | None
    local_id: str | None
    total_chunks: int
    size: int | None
    received_at: str | None
    linked_message_id: str | None = None

    @property
    def is_report(self) -> bool:
        return self.message_type == REPORT_TYPE

    @classmethod
    def from_headers(cls, message_id: str, headers: Mapping[str, str]) -> InboxItem:
        mex = mex_headers(headers)
        chunks = total_chunks(mex)
        length = _header(headers, "content-length") or ""
        encoded = _header(headers, "content-encoding") is not None
        known = length.isdigit() and int(length) > 0 and chunks == 1 and not encoded
        return cls(
            message_id=mex.get("messageid") or message_id,
            message_type=(mex.get("messagetype") or "DATA").upper(),
            sender=mex.get("from") or None,
            workflow_id=mex.get("workflowid") or None,
            subject=mex.get("subject") or None,
            file_name=mex.get("filename") or None,
            local_id=mex.get("localid") or None,
            total_chunks=chunks,
            size=int(length) if known else None,
            received_at=iso_time(mex.get("statustimestamp")) or http_time(_header(headers, "last-modified")),
            linked_message_id=mex.get("linkedmsgid") or None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "message_type": self.message_type,
            "sender": self.sender,
            "workflow_id": self.workflow_id,
            "subject": self.subject,
            "file_name": self.file_name,
            "local_id": self.local_id,
            "total_chunks": self.total_chunks,
            "size": self.size,
            "received_at": self.received_at,
            "linked_message_id": self.linked_message_id,
        }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


@dataclass(frozen=True)
class Endpoint:
    """A mailbox found by endpoint lookup."""

    mailbox_id: str
    mailbox_name: str | None

    def to_json(self) -> dict[str, Any]:
        return {"mailbox_id": self.mailbox_id, "mailbox_name": self.mailbox_name}
