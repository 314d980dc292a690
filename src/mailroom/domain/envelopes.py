"""Messages as the JSON messaging API sees them: an envelope (sender, subject, body) delivered
to several recipients, with attachments stored once. Pure data and rules; no I/O.

Every ``messages`` row is a delivery: one recipient's copy, which the MESH face serves as it is.
A message written through the JSON API is an envelope with one delivery per recipient; a MESH
message is a delivery with no envelope, seen here as a message whose payload is one attachment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from mailroom.domain.messages import MessageStatus


class DeliveryState(StrEnum):
    """One recipient's copy, as the sender sees it."""

    QUEUED = "queued"  # accepted, not yet in the recipient's inbox (an outside partner's)
    SENT = "sent"  # in the recipient's inbox
    DELIVERED = "delivered"  # retrieved by the recipient on either face (a receipt exists)
    ACKNOWLEDGED = "acknowledged"  # acknowledged on MESH or deleted through the JSON API
    FAILED = "failed"  # not delivered: expired unread, or refused, with a reason


def delivery_state(status: MessageStatus, delivered: bool) -> DeliveryState:
    if status is MessageStatus.ACKNOWLEDGED:
        return DeliveryState.ACKNOWLEDGED
    if status in (MessageStatus.UNDELIVERABLE, MessageStatus.ERROR):
        return DeliveryState.FAILED
    if status is MessageStatus.UPLOADING:
        return DeliveryState.QUEUED
    return DeliveryState.DELIVERED if delivered else DeliveryState.SENT


class Face(StrEnum):
    """Where a message was written (decides, for one, how an idempotent retry is answered)."""

    MESH = "mesh"
    MFT = "mft"
    D4SCIENCE = "d4science"


class Box(StrEnum):
    """The lists a sender has (MFT Gateway's outbox, queued, failed and incomplete)."""

    SENT = "sent"
    QUEUED = "queued"
    FAILED = "failed"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class AttachmentInfo:
    attachment_id: str  # for a MESH message: its message id (the whole payload)
    name: str
    content_type: str
    size: int
    sha256: str  # "" when not known (a MESH payload of several chunks)


@dataclass(frozen=True)
class DeliveryInfo:
    message_id: str  # the delivery's MESH message id
    recipient_id: str
    state: DeliveryState
    reason: str  # why it failed ("" otherwise)
    status_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class MessageView:
    """One message as a JSON face renders it.

    ``message_id``: a received message's is its delivery's MESH message id; a sent one's is its
    envelope id (which is also its delivery's id when it has one recipient), or the MESH id
    of a message sent on MESH.
    """

    message_id: str
    incoming: bool
    sender_id: str
    subject: str
    body: str
    created_at: datetime
    local_id: str
    workflow_id: str
    face: Face
    attachments: list[AttachmentInfo]
    deliveries: list[DeliveryInfo]  # received: the caller's own; sent: every recipient's
    read: bool = False  # received messages: the API-scope read flag
    recipients: list[str] = field(default_factory=list)

    @property
    def recipient_ids(self) -> list[str]:
        return self.recipients or [d.recipient_id for d in self.deliveries]


@dataclass(frozen=True)
class Compose:
    """A message to write: recipients are mailbox ids; attachments name staged uploads."""

    recipients: list[str]
    subject: str
    body: str
    attachment_ids: list[str] = field(default_factory=list)
    local_id: str = ""
    workflow_id: str = ""
    idempotency_key: str | None = None
    face: Face = Face.MFT


@dataclass(frozen=True)
class Submitted:
    envelope_id: str
    message_ids: list[str]  # one delivery per recipient, in the order given
    skipped: list[str]  # recipients that name no active mailbox (D4Science skips them)
    replayed: bool  # True when an earlier submit with the same idempotency key is answered


@dataclass(frozen=True)
class ListQuery:
    """MFT Gateway's list parameters, already checked (see ``services.messaging.list_query``)."""

    descending: bool = True
    limit: int = 10
    offset: int = 0
    fetch_all: bool = True  # False: hide received messages already marked read
    station: str | None = None  # the caller's own mailbox (primary filter)
    partner: str | None = None  # the other party (secondary filters, first present wins)
    message_id: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[MessageView]
    total: int
