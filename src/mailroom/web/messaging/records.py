"""Messages as each JSON face's records (``MessageView`` → JSON), and their states in words.

MFT Gateway's fields follow its ``AS2Message`` (json-api-sources.md §1.5): ``id``,
``as2MessageId`` (and the newer ``messageIdentifier``), ``incoming``, ``senderAS2Id``,
``receiverAS2Id``, ``subject``, ``timestamp`` (ms), ``msgStatus``, ``apiFetched``; from AS2
Gateway v1, ``deliveryStatus`` (Delivered, Not Delivered, No Status); and Mailroom's own
``attachments`` and, for a sent message, ``recipients`` with each delivery's state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailroom.domain.envelopes import DeliveryState, MessageView

DONE = (DeliveryState.DELIVERED, DeliveryState.ACKNOWLEDGED)


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def message_status(view: MessageView) -> str:
    """``received`` for a received message; for a sent one ``failed`` when every delivery
    failed, ``queued`` while any is queued, else ``sent``."""
    if view.incoming:
        return "received"
    states = [d.state for d in view.deliveries]
    if states and all(s is DeliveryState.FAILED for s in states):
        return "failed"
    if any(s is DeliveryState.QUEUED for s in states):
        return "queued"
    return "sent"


def delivery_status(view: MessageView) -> str:
    """AS2 Gateway's words: ``Delivered`` once every recipient has retrieved it,
    ``Not Delivered`` if any delivery failed, else ``No Status``."""
    states = [d.state for d in view.deliveries]
    if any(s is DeliveryState.FAILED for s in states):
        return "Not Delivered"
    if states and all(s in DONE for s in states):
        return "Delivered"
    return "No Status"


def mft_record(view: MessageView) -> dict[str, Any]:
    recipients = view.recipient_ids
    record: dict[str, Any] = {
        "id": view.message_id,
        "as2MessageId": view.message_id,
        "messageIdentifier": view.message_id,
        "incoming": view.incoming,
        "senderAS2Id": view.sender_id,
        "receiverAS2Id": ",".join(recipients),
        "subject": view.subject,
        "body": view.body,  # Mailroom's: MFT Gateway's messages have none
        "timestamp": millis(view.created_at),
        "msgStatus": message_status(view),
        "deliveryStatus": delivery_status(view),
        "apiFetched": view.read,
        "localId": view.local_id,
        "attachments": [
            {"name": a.name, "size": a.size, "contentType": a.content_type} for a in view.attachments
        ],
    }
    if not view.incoming:
        record["recipients"] = [
            {"id": d.recipient_id, "state": d.state.value, "reason": d.reason} for d in view.deliveries
        ]
    return record


def d4science_record(view: MessageView) -> dict[str, Any]:
    """social-networking-library 2.6.0's ``Message``; a sent message is read (by its sender)."""
    return {
        "id": view.message_id,
        "sender": view.sender_id,
        "subject": view.subject,
        "body": view.body,
        "recipients": [{"id": r} for r in view.recipient_ids],
        "send_time": millis(view.created_at),
        "read": view.read if view.incoming else True,
        "attachment_ids": [a.attachment_id for a in view.attachments],
    }
