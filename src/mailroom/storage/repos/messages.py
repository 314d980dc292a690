"""Message, event and chunk rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)

from mailroom.domain.messages import (
    Message,
    MessageStatus,
    MessageType,
    Metadata,
    Party,
    StatusDetail,
    WorkflowFilter,
)
from mailroom.storage.hot import NamedRow, Prepared, Tx
from mailroom.storage.tables import check_text, chunks, message_events, messages, storable, text_limits

_MESSAGE_TEXT = text_limits(messages)
_EVENT_TEXT = text_limits(message_events)
_MESSAGE_COLUMNS = [column.name for column in messages.columns]
_EVENT_COLUMNS = [column.name for column in message_events.columns if column.name != "id"]
_CHUNK_COLUMNS = [column.name for column in chunks.columns]

# The statements every small message runs (see storage/hot.py); the rest below are built per call.
_INSERT_MESSAGE = Prepared(lambda _: insert(messages), _MESSAGE_COLUMNS)
_INSERT_EVENT = Prepared(lambda _: insert(message_events), _EVENT_COLUMNS)
_INSERT_CHUNK = Prepared(lambda _: insert(chunks), _CHUNK_COLUMNS)
_MESSAGE_BY_ID = Prepared(lambda _: select(messages).where(messages.c.message_id == bindparam("id")))
_MESSAGE_BY_ID_FOR_UPDATE = Prepared(
    lambda dialect: (
        select(messages).where(messages.c.message_id == bindparam("id")).with_for_update(nowait=False)
        if dialect != "sqlite"
        else select(messages).where(messages.c.message_id == bindparam("id"))
    )
)
_RECIPIENT_FOR_UPDATE = Prepared(
    lambda dialect: (
        select(messages.c.recipient_id).where(messages.c.message_id == bindparam("id")).with_for_update()
        if dialect != "sqlite"
        else select(messages.c.recipient_id).where(messages.c.message_id == bindparam("id"))
    )
)
_CHUNK_COLUMNS_OUT = (chunks.c.chunk_no, chunks.c.size, chunks.c.sha256, chunks.c.payload_key, chunks.c.data)
_CHUNK_BY_NO = Prepared(
    lambda _: select(*_CHUNK_COLUMNS_OUT).where(
        chunks.c.message_id == bindparam("id"), chunks.c.chunk_no == bindparam("no")
    )
)
_ACKNOWLEDGE = Prepared(
    lambda _: update(messages).where(
        messages.c.message_id == bindparam("id"), messages.c.status == bindparam("from_status")
    ),
    ["status", "status_at", "acknowledged_at"],
)
_INBOX_WHERE = (
    messages.c.recipient_id == bindparam("recipient"),
    messages.c.status == MessageStatus.ACCEPTED.value,
)
_INBOX_FIRST = Prepared(
    lambda _: (
        select(messages.c.accepted_at, messages.c.message_id)
        .where(*_INBOX_WHERE)
        .order_by(messages.c.accepted_at, messages.c.message_id)
        .limit(bindparam("limit"))
    )
)
_INBOX_AFTER = Prepared(
    lambda _: (
        select(messages.c.accepted_at, messages.c.message_id)
        .where(
            *_INBOX_WHERE,
            tuple_(messages.c.accepted_at, messages.c.message_id)
            > tuple_(bindparam("after_at", type_=messages.c.accepted_at.type), bindparam("after_id")),
        )
        .order_by(messages.c.accepted_at, messages.c.message_id)
        .limit(bindparam("limit"))
    )
)
_INBOX_COUNT = Prepared(lambda _: select(func.count()).select_from(messages).where(*_INBOX_WHERE))


@dataclass(frozen=True)
class InboxPosition:
    """Where an inbox page ends: messages are listed by (accepted_at, message_id)."""

    accepted_at: datetime
    message_id: str


@dataclass(frozen=True)
class ChunkRow:
    chunk_no: int
    size: int
    sha256: str
    payload_key: str  # "" when the bytes are in ``data``
    data: bytes | None = None  # a small chunk's bytes, kept in its row (None once purged)

    @property
    def inline(self) -> bool:
        return not self.payload_key


@dataclass(frozen=True)
class HeldMessages:
    """What a mailbox still has in the exchange: see ``held_by``."""

    waiting: int  # in its inbox, not yet acknowledged
    uploading: int  # chunked uploads not yet complete, from it or to it
    sent_waiting: int  # sent by it, waiting in another mailbox's inbox

    @property
    def blocking(self) -> int:
        """Messages that would be lost with the mailbox (``delete_held`` deletes these)."""
        return self.waiting + self.uploading


def _party(row: Any, prefix: str) -> Party:
    return Party(
        mailbox_id=getattr(row, f"{prefix}_id"),
        name=getattr(row, f"{prefix}_name"),
        ods_code=getattr(row, f"{prefix}_ods_code"),
        org_code=getattr(row, f"{prefix}_org_code"),
        org_name=getattr(row, f"{prefix}_org_name"),
        billing_entity=getattr(row, f"{prefix}_billing_entity"),
    )


def to_message(row: Any) -> Message:
    return Message(
        message_id=row.message_id,
        message_type=MessageType(row.message_type),
        sender=_party(row, "sender"),
        recipient=_party(row, "recipient"),
        meta=Metadata(
            workflow_id=row.workflow_id,
            subject=row.subject,
            local_id=row.local_id,
            partner_id=row.partner_id,
            file_name=row.file_name,
            content_type=row.content_type,
            content_encoding=row.content_encoding,
            checksum=row.checksum,
            encrypted=row.encrypted,
            compressed=row.compressed,
        ),
        total_chunks=row.total_chunks,
        file_size=row.file_size,
        status=MessageStatus(row.status),
        detail=StatusDetail(
            event=row.status_event,
            code=row.status_code,
            description=row.status_description,
            linked_message_id=row.linked_message_id,
        ),
        created_at=row.created_at,
        status_at=row.status_at,
        accepted_at=row.accepted_at,
        acknowledged_at=row.acknowledged_at,
        inbox_expires_at=row.inbox_expires_at,
    )


def _party_values(party: Party, prefix: str) -> dict[str, str]:
    return {
        f"{prefix}_id": party.mailbox_id,
        f"{prefix}_name": party.name,
        f"{prefix}_ods_code": party.ods_code,
        f"{prefix}_org_code": party.org_code,
        f"{prefix}_org_name": party.org_name,
        f"{prefix}_billing_entity": party.billing_entity,
    }


def insert_message(conn: Connection | Tx, message: Message) -> None:
    meta = message.meta
    detail = message.detail
    # Parameters passed to a plain insert() rather than built into .values(): the compiled
    # statement is cached and reused, which halves the CPU cost of the hottest insert.
    values = dict(
        message_id=message.message_id,
        message_type=message.message_type.value,
        status=message.status.value,
        **_party_values(message.sender, "sender"),
        **_party_values(message.recipient, "recipient"),
        workflow_id=meta.workflow_id,
        subject=meta.subject,
        local_id=meta.local_id,
        partner_id=meta.partner_id,
        file_name=meta.file_name,
        content_type=meta.content_type,
        content_encoding=meta.content_encoding,
        checksum=meta.checksum,
        encrypted=meta.encrypted,
        compressed=meta.compressed,
        total_chunks=message.total_chunks,
        file_size=message.file_size,
        status_event=detail.event,
        status_code=detail.code,
        status_description=detail.description,
        linked_message_id=detail.linked_message_id,
        created_at=message.created_at,
        status_at=message.status_at,
        accepted_at=message.accepted_at,
        acknowledged_at=message.acknowledged_at,
        inbox_expires_at=message.inbox_expires_at,
    )
    check_text(_MESSAGE_TEXT, values)
    Tx.of(conn).execute(_INSERT_MESSAGE, {**values, "payload_purged": False})


def get(conn: Connection | Tx, message_id: str, *, for_update: bool = False) -> Message | None:
    if not storable(message_id):
        return None
    stmt = _MESSAGE_BY_ID_FOR_UPDATE if for_update else _MESSAGE_BY_ID
    row = Tx.of(conn).first(stmt, {"id": message_id})
    return to_message(NamedRow(_MESSAGE_COLUMNS, row)) if row else None


def recipient_for_update(conn: Connection | Tx, message_id: str) -> str | None:
    """The recipient of a message (None if there is none), its row locked on PostgreSQL: all an
    acknowledgement needs to know, without reading and mapping the whole row."""
    if not storable(message_id):
        return None
    row = Tx.of(conn).first(_RECIPIENT_FOR_UPDATE, {"id": message_id})
    return str(row[0]) if row else None


def add_event(
    conn: Connection | Tx,
    message_id: str,
    status: MessageStatus,
    at: datetime,
    detail: StatusDetail = StatusDetail(),
) -> None:
    values = dict(
        message_id=message_id,
        status=status.value,
        event=detail.event,
        code=detail.code,
        description=detail.description,
        linked_message_id=detail.linked_message_id,
        created_at=at,
    )
    check_text(_EVENT_TEXT, values)
    Tx.of(conn).execute(_INSERT_EVENT, values)


def change_status(
    conn: Connection,
    message_id: str,
    status: MessageStatus,
    at: datetime,
    *,
    only_from: Sequence[MessageStatus] | None = None,
    detail: StatusDetail | None = None,
    **extra: Any,
) -> bool:
    """Move a message to ``status`` (optionally only from given statuses); records the event.

    Returns False when the row was not in an allowed status, so concurrent callers change a
    message exactly once.
    """
    stmt = update(messages).where(messages.c.message_id == message_id)
    if only_from is not None:
        stmt = stmt.where(messages.c.status.in_([s.value for s in only_from]))
    values: dict[str, Any] = {"status": status.value, "status_at": at, **extra}
    if detail is not None:
        values.update(
            status_event=detail.event,
            status_code=detail.code,
            status_description=detail.description,
            linked_message_id=detail.linked_message_id or "",
        )
    check_text(_MESSAGE_TEXT, values)
    if not conn.execute(stmt.values(**values)).rowcount:
        return False
    add_event(conn, message_id, status, at, detail or StatusDetail())
    return True


def acknowledge(conn: Connection | Tx, message_id: str, at: datetime) -> bool:
    """``change_status`` to acknowledged, only from accepted, as one prepared statement."""
    tx = Tx.of(conn)
    values = {"status": MessageStatus.ACKNOWLEDGED.value, "status_at": at, "acknowledged_at": at}
    params = {**values, "id": message_id, "from_status": MessageStatus.ACCEPTED.value}
    if not tx.execute(_ACKNOWLEDGE, params):
        return False
    add_event(tx, message_id, MessageStatus.ACKNOWLEDGED, at)
    return True


def insert_chunk(conn: Connection | Tx, message_id: str, chunk: ChunkRow, at: datetime) -> None:
    """Record a chunk known to be new (chunk 1 of a message being created)."""
    values = {
        "message_id": message_id,
        "chunk_no": chunk.chunk_no,
        "size": chunk.size,
        "sha256": chunk.sha256,
        "payload_key": chunk.payload_key,
        "stored_at": at,
        "data": chunk.data,
    }
    Tx.of(conn).execute(_INSERT_CHUNK, values)


def upsert_chunk(conn: Connection, message_id: str, chunk: ChunkRow, at: datetime) -> str | None:
    """Record a chunk; returns the payload key it replaced, if any (to delete after commit)."""
    key = (chunks.c.message_id == message_id) & (chunks.c.chunk_no == chunk.chunk_no)
    previous = conn.execute(select(chunks.c.payload_key).where(key)).scalar_one_or_none()
    values = {
        "size": chunk.size,
        "sha256": chunk.sha256,
        "payload_key": chunk.payload_key,
        "stored_at": at,
        "data": chunk.data,
    }
    if previous is None:
        conn.execute(insert(chunks), {"message_id": message_id, "chunk_no": chunk.chunk_no, **values})
        return None
    conn.execute(update(chunks).where(key).values(**values))
    return previous if previous and previous != chunk.payload_key else None


def chunk_totals(conn: Connection, message_id: str) -> tuple[int, int]:
    """(number of chunks stored, their total size)."""
    stmt = select(func.count(), func.coalesce(func.sum(chunks.c.size), 0)).where(
        chunks.c.message_id == message_id
    )
    count, size = conn.execute(stmt).one()
    return int(count), int(size)


def get_chunk(conn: Connection | Tx, message_id: str, chunk_no: int) -> ChunkRow | None:
    row = Tx.of(conn).first(_CHUNK_BY_NO, {"id": message_id, "no": chunk_no})
    return ChunkRow(*row) if row else None


def _workflow_clause(conn: Connection, wf: WorkflowFilter) -> ColumnElement[bool]:
    column = messages.c.workflow_id
    if wf.mode == "contains":
        finder = func.instr if conn.dialect.name == "sqlite" else func.strpos
        clause: ColumnElement[bool] = finder(column, wf.value) > 0
    elif wf.mode == "prefix":
        clause = func.substr(column, 1, len(wf.value)) == wf.value
    else:
        clause = column == wf.value
    return ~clause if wf.negate else clause


def _inbox_where(conn: Connection, recipient: str, wf: WorkflowFilter | None) -> list[ColumnElement[bool]]:
    where = [messages.c.recipient_id == recipient, messages.c.status == MessageStatus.ACCEPTED.value]
    if wf is not None:
        where.append(_workflow_clause(conn, wf))
    return where


def inbox_page(
    conn: Connection,
    recipient: str,
    *,
    after: InboxPosition | None,
    limit: int,
    workflow_filter: WorkflowFilter | None = None,
) -> list[InboxPosition]:
    if workflow_filter is not None and not storable(workflow_filter.value):
        return []
    if workflow_filter is None:
        tx = Tx.of(conn)
        if after is None:
            rows = tx.rows(_INBOX_FIRST, {"recipient": recipient, "limit": limit})
        else:
            params = {"recipient": recipient, "after_at": after.accepted_at, "after_id": after.message_id}
            rows = tx.rows(_INBOX_AFTER, {**params, "limit": limit})
        return [InboxPosition(*row) for row in rows]
    where = _inbox_where(conn, recipient, workflow_filter)
    if after is not None:
        where.append(
            tuple_(messages.c.accepted_at, messages.c.message_id)
            > tuple_(after.accepted_at, after.message_id)
        )
    stmt = (
        select(messages.c.accepted_at, messages.c.message_id)
        .where(*where)
        .order_by(messages.c.accepted_at, messages.c.message_id)
        .limit(limit)
    )
    return [InboxPosition(row.accepted_at, row.message_id) for row in conn.execute(stmt)]


def inbox_count(conn: Connection, recipient: str, workflow_filter: WorkflowFilter | None = None) -> int:
    if workflow_filter is not None and not storable(workflow_filter.value):
        return 0
    if workflow_filter is None:
        found = Tx.of(conn).first(_INBOX_COUNT, {"recipient": recipient})
        assert found is not None
        return int(found[0])
    stmt = select(func.count()).select_from(messages).where(*_inbox_where(conn, recipient, workflow_filter))
    return int(conn.execute(stmt).scalar_one())


def recent(
    conn: Connection,
    *,
    recipient: str | None = None,
    sender: str | None = None,
    since: datetime,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Message]:
    """Newest first, for the rich inbox and outbox views."""
    where: list[ColumnElement[bool]] = [messages.c.created_at >= since]
    if recipient is not None:
        where.append(messages.c.recipient_id == recipient)
    if sender is not None:
        where.append(messages.c.sender_id == sender)
    if before is not None:
        where.append(
            or_(
                messages.c.created_at < before[0],
                and_(messages.c.created_at == before[0], messages.c.message_id < before[1]),
            )
        )
    stmt = (
        select(messages)
        .where(*where)
        .order_by(messages.c.created_at.desc(), messages.c.message_id.desc())
        .limit(limit)
    )
    return [to_message(row) for row in conn.execute(stmt)]


def by_local_id(conn: Connection, sender: str, local_id: str, limit: int = 2) -> list[Message]:
    if not storable(sender, local_id):
        return []
    stmt = (
        select(messages)
        .where(messages.c.sender_id == sender, messages.c.local_id == local_id)
        .order_by(messages.c.created_at)
        .limit(limit)
    )
    return [to_message(row) for row in conn.execute(stmt)]


def claim_due_for_expiry(conn: Connection, now: datetime, limit: int) -> list[str]:
    """Accepted DATA messages past their inbox expiry, locked for this transaction.

    On PostgreSQL the rows are locked ``FOR UPDATE SKIP LOCKED``: a concurrent sweep in another
    process claims other rows instead of waiting for (and re-checking) these. The lock also
    re-checks the status, so a message acknowledged meanwhile is not returned. On SQLite the
    caller's ``BEGIN IMMEDIATE`` already excludes every other writer.
    """
    stmt = (
        select(messages.c.message_id)
        .where(
            messages.c.status == MessageStatus.ACCEPTED.value,
            messages.c.message_type == MessageType.DATA.value,
            messages.c.inbox_expires_at <= now,
        )
        .order_by(messages.c.inbox_expires_at)
        .limit(limit)
    )
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(conn.execute(stmt).scalars())


def due_for_abandon(conn: Connection, cutoff: datetime, limit: int) -> list[str]:
    stmt = (
        select(messages.c.message_id)
        .where(messages.c.status == MessageStatus.UPLOADING.value, messages.c.created_at <= cutoff)
        .order_by(messages.c.created_at)
        .limit(limit)
    )
    return list(conn.execute(stmt).scalars())


#: Statuses a message does not leave: its payload may be purged, and later its rows.
_FINISHED = [MessageStatus.ACKNOWLEDGED.value, MessageStatus.UNDELIVERABLE.value, MessageStatus.ERROR.value]


def due_for_purge(conn: Connection, cutoff: datetime, limit: int) -> list[str]:
    stmt = (
        select(messages.c.message_id)
        .where(
            messages.c.status.in_(_FINISHED),
            messages.c.status_at <= cutoff,
            messages.c.payload_purged.is_(False),
        )
        .limit(limit)
    )
    return list(conn.execute(stmt).scalars())


def forget_finished(conn: Connection, cutoff: datetime, limit: int) -> list[str]:
    """Delete the rows of finished messages whose payloads are purged and whose last status
    change is at or before ``cutoff`` (locked ``SKIP LOCKED`` on PostgreSQL); their ids."""
    stmt = (
        select(messages.c.message_id)
        .where(
            messages.c.status.in_(_FINISHED),
            messages.c.status_at <= cutoff,
            messages.c.payload_purged.is_(True),
        )
        .limit(limit)
    )
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    ids = list(conn.execute(stmt).scalars())
    _delete(conn, ids)
    return ids


def mark_purged(conn: Connection, message_id: str) -> None:
    """After its payloads were deleted: the message is purged, and so are bytes kept in its rows."""
    conn.execute(update(messages).where(messages.c.message_id == message_id).values(payload_purged=True))
    conn.execute(
        update(chunks).where(chunks.c.message_id == message_id, chunks.c.data.is_not(None)).values(data=None)
    )


def existing_ids(conn: Connection, message_ids: Sequence[str]) -> set[str]:
    stmt = select(messages.c.message_id).where(messages.c.message_id.in_(message_ids))
    return set(conn.execute(stmt).scalars())


def _counted(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def held_by(conn: Connection, mailbox_id: str) -> HeldMessages:
    """Counts of the messages a mailbox still takes part in, in one query."""
    accepted = messages.c.status == MessageStatus.ACCEPTED.value
    uploading = messages.c.status == MessageStatus.UPLOADING.value
    to_it = messages.c.recipient_id == mailbox_id
    stmt = select(
        _counted(and_(to_it, accepted)),
        _counted(uploading),
        _counted(and_(~to_it, accepted)),
    ).where(
        or_(to_it, messages.c.sender_id == mailbox_id),
        messages.c.status.in_([MessageStatus.ACCEPTED.value, MessageStatus.UPLOADING.value]),
    )
    row = conn.execute(stmt).one()
    return HeldMessages(waiting=int(row[0]), uploading=int(row[1]), sent_waiting=int(row[2]))


def delete_held(conn: Connection, mailbox_id: str) -> list[str]:
    """Delete the messages ``held_by`` counts as blocking: those waiting in the mailbox's inbox
    and uploads in progress from or to it. Messages it sent that wait in other inboxes stay (they
    are the recipients' now), and so does finished history. Returns the deleted ids."""
    stmt = select(messages.c.message_id).where(
        or_(
            and_(
                messages.c.recipient_id == mailbox_id,
                messages.c.status.in_([MessageStatus.ACCEPTED.value, MessageStatus.UPLOADING.value]),
            ),
            and_(messages.c.sender_id == mailbox_id, messages.c.status == MessageStatus.UPLOADING.value),
        )
    )
    ids = list(conn.execute(stmt).scalars())
    _delete(conn, ids)
    return ids


def delete_where_party(conn: Connection, mailbox_id: str | None) -> list[str]:
    """Delete messages (all, or those a mailbox sent or received); returns their ids."""
    stmt = select(messages.c.message_id)
    if mailbox_id is not None:
        stmt = stmt.where(or_(messages.c.recipient_id == mailbox_id, messages.c.sender_id == mailbox_id))
    ids = list(conn.execute(stmt).scalars())
    _delete(conn, ids)
    return ids


def _delete(conn: Connection, ids: Sequence[str]) -> None:
    """Messages with their chunk rows (and inline bytes) and events; payloads are the caller's."""
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        conn.execute(delete(chunks).where(chunks.c.message_id.in_(batch)))
        conn.execute(delete(message_events).where(message_events.c.message_id.in_(batch)))
        conn.execute(delete(messages).where(messages.c.message_id.in_(batch)))


def get_many(conn: Connection, message_ids: Sequence[str]) -> dict[str, Message]:
    """Several messages by id (those that exist), for the JSON API's lists."""
    wanted = [m for m in message_ids if storable(m)]
    if not wanted:
        return {}
    rows = conn.execute(select(messages).where(messages.c.message_id.in_(wanted)))
    return {row.message_id: to_message(row) for row in rows}


def chunks_of(conn: Connection, message_id: str) -> list[ChunkRow]:
    """Every chunk of a message, in order (a MESH payload read whole by the JSON API)."""
    stmt = select(*_CHUNK_COLUMNS_OUT).where(chunks.c.message_id == message_id).order_by(chunks.c.chunk_no)
    return [ChunkRow(row[0], row[1], row[2], row[3], row[4]) for row in conn.execute(stmt)]
