"""What the administration API reads and changes about messages: searches, status history,
chunk listings, re-injection and deletion, and the walks in key order over stored chunks
(``VerifyStore``) and over a mailbox's messages (``ExportMailbox``).

None of this is on a MESH request's path: the hot statements stay in ``messages.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, func, literal, or_, select, tuple_, update

from mailroom.domain.messages import Message, MessageStatus, MessageType, StatusDetail
from mailroom.storage.repos.messages import add_event, to_message
from mailroom.storage.tables import attachments, chunks, message_events, messages, storable

#: Chunk rows read per batch of a walk; a small chunk's bytes come with its row
#: (``inline_payload_bytes``, 64 KiB by default), so a batch holds a few MiB at most.
WALK_BATCH = 100


@dataclass(frozen=True)
class MessageQuery:
    """Filters of ``GetMessages``; None leaves a filter out."""

    mailbox_id: str | None = None
    direction: str | None = None  # "in" (received by mailbox_id), "out" (sent by it), None: both
    status: MessageStatus | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    workflow_id: str | None = None
    local_id: str | None = None

    def storable(self) -> bool:
        return storable(self.mailbox_id, self.workflow_id, self.local_id)


@dataclass(frozen=True)
class Listed:
    message: Message
    payload_purged: bool


@dataclass(frozen=True)
class EventRow:
    status: str
    detail: StatusDetail
    at: datetime


@dataclass(frozen=True)
class ChunkListing:
    """A chunk as the API shows it: never its bytes."""

    chunk_no: int
    size: int
    sha256: str
    in_row: bool  # its bytes are in the database row (a small chunk)
    stored_at: datetime


@dataclass(frozen=True)
class StoredChunk:
    """A chunk to read: from the payload store under ``payload_key``, or ``data`` in its row."""

    message_id: str
    chunk_no: int
    size: int
    sha256: str
    payload_key: str
    data: bytes | None

    @property
    def key(self) -> tuple[str, int]:
        return self.message_id, self.chunk_no


def _where(query: MessageQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.mailbox_id is not None:
        received = messages.c.recipient_id == query.mailbox_id
        sent = messages.c.sender_id == query.mailbox_id
        where.append({"in": received, "out": sent}.get(query.direction or "", or_(received, sent)))
    if query.status is not None:
        where.append(messages.c.status == query.status.value)
    if query.since is not None:
        where.append(messages.c.created_at >= query.since)
    if query.until is not None:
        where.append(messages.c.created_at < query.until)
    if query.workflow_id is not None:
        where.append(messages.c.workflow_id == query.workflow_id)
    if query.local_id is not None:
        where.append(messages.c.local_id == query.local_id)
    return where


def search(conn: Connection, query: MessageQuery, *, offset: int, limit: int) -> tuple[int, list[Listed]]:
    """(how many match, one page of them newest first)."""
    if not query.storable():
        return 0, []
    where = _where(query)
    total = conn.execute(select(func.count()).select_from(messages).where(*where)).scalar_one()
    stmt = (
        select(messages)
        .where(*where)
        .order_by(messages.c.created_at.desc(), messages.c.message_id.desc())
        .offset(offset)
        .limit(limit)
    )
    return int(total), [Listed(to_message(row), bool(row.payload_purged)) for row in conn.execute(stmt)]


def get(conn: Connection, message_id: str) -> Listed | None:
    if not storable(message_id):
        return None
    row = conn.execute(select(messages).where(messages.c.message_id == message_id)).first()
    return Listed(to_message(row), bool(row.payload_purged)) if row else None


def events(conn: Connection, message_id: str) -> list[EventRow]:
    stmt = (
        select(message_events).where(message_events.c.message_id == message_id).order_by(message_events.c.id)
    )
    return [
        EventRow(
            row.status,
            StatusDetail(row.event, row.code, row.description, row.linked_message_id),
            row.created_at,
        )
        for row in conn.execute(stmt)
    ]


def chunk_listing(conn: Connection, message_id: str) -> list[ChunkListing]:
    stmt = (
        select(
            chunks.c.chunk_no,
            chunks.c.size,
            chunks.c.sha256,
            (chunks.c.payload_key == "").label("in_row"),
            chunks.c.stored_at,
        )
        .where(chunks.c.message_id == message_id)
        .order_by(chunks.c.chunk_no)
    )
    return [
        ChunkListing(row.chunk_no, int(row.size), row.sha256, bool(row.in_row), row.stored_at)
        for row in conn.execute(stmt)
    ]


def reinject(
    conn: Connection,
    message_id: str,
    now: datetime,
    expires: datetime,
    *,
    purge_cutoff: datetime,
    detail: StatusDetail,
) -> bool:
    """Put an undeliverable DATA message back in its recipient's inbox (accepted, a fresh
    expiry, its failure detail cleared), recording ``detail`` as the event. Only one whose
    payload is still there and not yet due for purge (``status_at`` after ``purge_cutoff``, so a
    purge running now cannot be deleting it); False if it was not in that state."""
    stmt = (
        update(messages)
        .where(
            messages.c.message_id == message_id,
            messages.c.message_type == MessageType.DATA.value,
            messages.c.status == MessageStatus.UNDELIVERABLE.value,
            messages.c.payload_purged.is_(False),
            messages.c.status_at > purge_cutoff,
        )
        .values(
            status=MessageStatus.ACCEPTED.value,
            status_at=now,
            accepted_at=now,
            acknowledged_at=None,
            inbox_expires_at=expires,
            status_event="",
            status_code="",
            status_description="",
            linked_message_id="",
        )
    )
    if not conn.execute(stmt).rowcount:
        return False
    add_event(conn, message_id, MessageStatus.ACCEPTED, now, detail)
    return True


def delete_finished(conn: Connection, message_id: str) -> bool:
    """Delete a message's rows (chunks with their in-row bytes, events, the message) unless it
    is being uploaded; False if there is no such message or it is uploading."""
    gone = conn.execute(
        delete(messages).where(
            messages.c.message_id == message_id, messages.c.status != MessageStatus.UPLOADING.value
        )
    ).rowcount
    if not gone:
        return False
    conn.execute(delete(chunks).where(chunks.c.message_id == message_id))
    conn.execute(delete(message_events).where(message_events.c.message_id == message_id))
    return True


# -- walks in key order ----------------------------------------------------------------------------

_STORED = and_(
    messages.c.message_id == chunks.c.message_id,
    messages.c.payload_purged.is_(False),
    messages.c.status != MessageStatus.UPLOADING.value,
)
_CHUNK_OUT = (
    chunks.c.message_id,
    chunks.c.chunk_no,
    chunks.c.size,
    chunks.c.sha256,
    chunks.c.payload_key,
    chunks.c.data,
)


def _stored(row: Any) -> StoredChunk:
    return StoredChunk(row[0], row[1], int(row[2]), row[3], row[4], None if row[5] is None else bytes(row[5]))


def count_stored(conn: Connection) -> tuple[int, int]:
    """(chunks, bytes) of every finished or waiting message whose payload is kept."""
    stmt = select(func.count(), func.coalesce(func.sum(chunks.c.size), 0)).select_from(
        chunks.join(messages, _STORED)
    )
    count, size = conn.execute(stmt).one()
    return int(count), int(size)


def stored_after(
    conn: Connection, after: tuple[str, int] | None, limit: int = WALK_BATCH
) -> list[StoredChunk]:
    """The next chunks whose payload is kept, in (message_id, chunk_no) order after ``after``."""
    stmt = select(*_CHUNK_OUT).select_from(chunks.join(messages, _STORED))
    if after is not None:
        stmt = stmt.where(tuple_(chunks.c.message_id, chunks.c.chunk_no) > tuple_(after[0], after[1]))
    stmt = stmt.order_by(chunks.c.message_id, chunks.c.chunk_no).limit(limit)
    return [_stored(row) for row in conn.execute(stmt)]


def still_stored(conn: Connection, chunk: StoredChunk) -> bool:
    """Whether ``chunk`` is still kept under the same key (a missing payload found by a walk
    may have been purged, deleted or replaced meanwhile: then nothing is wrong)."""
    stmt = (
        select(chunks.c.payload_key)
        .select_from(chunks.join(messages, _STORED))
        .where(chunks.c.message_id == chunk.message_id, chunks.c.chunk_no == chunk.chunk_no)
    )
    return conn.execute(stmt).scalar_one_or_none() == chunk.payload_key


def attachments_after(
    conn: Connection, after: tuple[str, int] | None, limit: int = WALK_BATCH
) -> list[StoredChunk]:
    """The next JSON API attachments whose bytes are kept, in id order after ``after`` (each is
    walked as a message's chunk 1: it is stored once, whatever shares it)."""
    stmt = select(
        attachments.c.attachment_id,
        literal(1),
        attachments.c.size,
        attachments.c.sha256,
        attachments.c.payload_key,
        attachments.c.data,
    ).where(attachments.c.purged.is_(False))
    if after is not None:
        stmt = stmt.where(attachments.c.attachment_id > after[0])
    stmt = stmt.order_by(attachments.c.attachment_id).limit(limit)
    return [_stored(row) for row in conn.execute(stmt)]


def attachment_still_stored(conn: Connection, chunk: StoredChunk) -> bool:
    stmt = select(attachments.c.payload_key).where(
        attachments.c.attachment_id == chunk.message_id, attachments.c.purged.is_(False)
    )
    return conn.execute(stmt).scalar_one_or_none() == chunk.payload_key


def count_attachments(conn: Connection) -> tuple[int, int]:
    stmt = select(func.count(), func.coalesce(func.sum(attachments.c.size), 0)).where(
        attachments.c.purged.is_(False)
    )
    count, size = conn.execute(stmt).one()
    return int(count), int(size)


def mailbox_messages_after(
    conn: Connection, mailbox_id: str, after: str | None, limit: int = WALK_BATCH
) -> list[Listed]:
    """A mailbox's messages (sent or received, not uploading) in message id order after ``after``."""
    where = [
        or_(messages.c.recipient_id == mailbox_id, messages.c.sender_id == mailbox_id),
        messages.c.status != MessageStatus.UPLOADING.value,
    ]
    if after is not None:
        where.append(messages.c.message_id > after)
    stmt = select(messages).where(*where).order_by(messages.c.message_id).limit(limit)
    return [Listed(to_message(row), bool(row.payload_purged)) for row in conn.execute(stmt)]


def count_mailbox_messages(conn: Connection, mailbox_id: str) -> int:
    stmt = (
        select(func.count())
        .select_from(messages)
        .where(
            or_(messages.c.recipient_id == mailbox_id, messages.c.sender_id == mailbox_id),
            messages.c.status != MessageStatus.UPLOADING.value,
        )
    )
    return int(conn.execute(stmt).scalar_one())


def chunks_of(conn: Connection, message_ids: Sequence[str]) -> list[StoredChunk]:
    """Every chunk of these messages, with in-row bytes, in key order."""
    if not message_ids:
        return []
    stmt = (
        select(*_CHUNK_OUT)
        .where(chunks.c.message_id.in_(list(message_ids)))
        .order_by(chunks.c.message_id, chunks.c.chunk_no)
    )
    return [_stored(row) for row in conn.execute(stmt)]
