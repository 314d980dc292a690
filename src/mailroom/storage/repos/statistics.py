"""Counts over the whole store, for the administration API (one grouped query each)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from mailroom.domain.messages import MessageStatus
from mailroom.storage.tables import mailboxes, messages


def counts(conn: Connection) -> dict[str, int]:
    boxes = conn.execute(select(func.count()).select_from(mailboxes)).scalar_one()
    total = conn.execute(select(func.count()).select_from(messages)).scalar_one()
    return {"mailboxes": int(boxes), "messages": int(total)}


def statistics(conn: Connection, now: datetime) -> dict[str, Any]:
    by_status = {
        row.status: int(row.n)
        for row in conn.execute(
            select(messages.c.status, func.count().label("n")).group_by(messages.c.status)
        )
    }
    stored = conn.execute(
        select(func.coalesce(func.sum(messages.c.file_size), 0)).where(messages.c.payload_purged.is_(False))
    ).scalar_one()
    waiting = {
        row.recipient_id: (int(row.n), row.oldest)
        for row in conn.execute(
            select(
                messages.c.recipient_id,
                func.count().label("n"),
                func.min(messages.c.accepted_at).label("oldest"),
            )
            .where(messages.c.status == MessageStatus.ACCEPTED.value)
            .group_by(messages.c.recipient_id)
        )
    }
    sent = {
        row.sender_id: int(row.n)
        for row in conn.execute(
            select(messages.c.sender_id, func.count().label("n")).group_by(messages.c.sender_id)
        )
    }
    per_mailbox = []
    for (box_id,) in conn.execute(select(mailboxes.c.mailbox_id).order_by(mailboxes.c.mailbox_id)):
        count, oldest = waiting.get(box_id, (0, None))
        age = None
        if oldest is not None:
            age = max(0.0, (now - oldest).total_seconds())
        per_mailbox.append(
            {"mailboxId": box_id, "waiting": count, "sent": sent.get(box_id, 0), "oldestWaitingSeconds": age}
        )
    return {
        "messagesByStatus": by_status,
        "bytesStored": int(stored),
        "mailboxes": per_mailbox,
    }
