"""Envelope, attachment and delivery rows: the JSON messaging API's side of the store.

A delivery is a ``messages`` row (what the MESH face serves); ``deliveries`` holds what only the
JSON API keeps about it (its envelope, the read flag, when it was first retrieved, the receipt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from mailroom.domain.envelopes import Box, ListQuery
from mailroom.domain.messages import MessageStatus
from mailroom.storage.hot import Prepared, Tx
from mailroom.storage.tables import (
    attachments,
    check_text,
    deliveries,
    envelope_attachments,
    envelopes,
    messages,
    storable,
    text_limits,
)

_ENVELOPE_TEXT = text_limits(envelopes)
_ATTACHMENT_TEXT = text_limits(attachments)


@dataclass(frozen=True)
class EnvelopeRow:
    envelope_id: str
    sender_id: str
    subject: str
    body: str
    local_id: str
    idempotency_key: str | None
    request_digest: str
    face: str
    created_at: datetime
    sender_deleted_at: datetime | None


@dataclass(frozen=True)
class AttachmentRow:
    attachment_id: str
    owner_id: str
    name: str
    content_type: str
    size: int
    sha256: str
    payload_key: str  # "" when the bytes are in ``data``
    data: bytes | None
    created_at: datetime
    purged: bool


@dataclass(frozen=True)
class DeliveryRow:
    message_id: str
    envelope_id: str | None
    read: bool
    read_at: datetime | None
    delivered_at: datetime | None
    sender_hidden: bool
    has_receipt: bool


_ENVELOPE_COLUMNS = [c.name for c in envelopes.columns]
_ATTACHMENT_COLUMNS = [c.name for c in attachments.columns]
_INSERT_ENVELOPE = Prepared(lambda _: insert(envelopes), _ENVELOPE_COLUMNS)
_INSERT_LINK = Prepared(lambda _: insert(envelope_attachments), ["envelope_id", "position", "attachment_id"])
_INSERT_DELIVERY = Prepared(
    lambda _: insert(deliveries),
    ["message_id", "envelope_id", "read", "read_at", "delivered_at", "sender_hidden", "receipt"],
)
_BY_KEY = Prepared(
    lambda _: select(envelopes.c.envelope_id, envelopes.c.request_digest).where(
        envelopes.c.sender_id == bindparam("sender"), envelopes.c.idempotency_key == bindparam("key")
    )
)
_DELIVERY_IDS = Prepared(
    lambda _: (
        select(deliveries.c.message_id)
        .join(messages, messages.c.message_id == deliveries.c.message_id)
        .where(deliveries.c.envelope_id == bindparam("envelope"))
        .order_by(messages.c.created_at, messages.c.message_id)
    )
)


def _envelope(row: Any) -> EnvelopeRow:
    return EnvelopeRow(**{name: getattr(row, name) for name in _ENVELOPE_COLUMNS})


def _attachment(row: Any) -> AttachmentRow:
    return AttachmentRow(**{name: getattr(row, name) for name in _ATTACHMENT_COLUMNS})


# -- writing ----------------------------------------------------------------------------------------
def insert_attachment(conn: Connection, row: AttachmentRow) -> None:
    values = {name: getattr(row, name) for name in _ATTACHMENT_COLUMNS}
    check_text(_ATTACHMENT_TEXT, values)
    conn.execute(insert(attachments).values(**values))


def insert_envelope(tx: Connection | Tx, row: EnvelopeRow) -> None:
    values = {name: getattr(row, name) for name in _ENVELOPE_COLUMNS}
    check_text(_ENVELOPE_TEXT, values)
    Tx.of(tx).execute(_INSERT_ENVELOPE, values)


def link_attachments(tx: Connection | Tx, envelope_id: str, attachment_ids: Sequence[str]) -> None:
    for position, attachment_id in enumerate(attachment_ids):
        Tx.of(tx).execute(
            _INSERT_LINK, {"envelope_id": envelope_id, "position": position, "attachment_id": attachment_id}
        )


def insert_delivery(tx: Connection | Tx, message_id: str, envelope_id: str | None) -> None:
    Tx.of(tx).execute(
        _INSERT_DELIVERY,
        {
            "message_id": message_id,
            "envelope_id": envelope_id,
            "read": False,
            "read_at": None,
            "delivered_at": None,
            "sender_hidden": False,
            "receipt": None,
        },
    )


def _upsert_delivery(conn: Connection, message_id: str, values: dict[str, Any]) -> None:
    """Change a delivery's API state, making its row first for a MESH message (which has none)."""
    base = {"message_id": message_id, "read": False, "sender_hidden": False, **values}
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(deliveries).values(**base)
    conn.execute(stmt.on_conflict_do_update(index_elements=["message_id"], set_=values))


def store_receipt(conn: Connection, message_id: str, document: bytes) -> None:
    conn.execute(
        update(deliveries)
        .where(deliveries.c.message_id == message_id, deliveries.c.receipt.is_(None))
        .values(receipt=document)
    )


def hide_sent(conn: Connection, sent_id: str, now: datetime) -> bool:
    """Hide a sent message from its sender's outbox (an envelope, or a MESH message)."""
    done = conn.execute(
        update(envelopes)
        .where(envelopes.c.envelope_id == sent_id, envelopes.c.sender_deleted_at.is_(None))
        .values(sender_deleted_at=now)
    ).rowcount
    if not done:
        _upsert_delivery(conn, sent_id, {"sender_hidden": True})
    return True


# -- reading ----------------------------------------------------------------------------------------
def by_idempotency_key(tx: Connection | Tx, sender_id: str, key: str) -> tuple[str, str, list[str]] | None:
    """(envelope id, request digest, delivery ids) of the sender's envelope with this key."""
    if not storable(key):
        return None
    found = Tx.of(tx).first(_BY_KEY, {"sender": sender_id, "key": key})
    if found is None:
        return None
    ids = [str(row[0]) for row in Tx.of(tx).rows(_DELIVERY_IDS, {"envelope": found[0]})]
    return str(found[0]), str(found[1]), ids


def envelope(conn: Connection | Tx, envelope_id: str) -> EnvelopeRow | None:
    if not storable(envelope_id):
        return None
    if isinstance(conn, Tx):
        raise TypeError("envelope() takes a Connection")
    row = conn.execute(select(envelopes).where(envelopes.c.envelope_id == envelope_id)).first()
    return _envelope(row) if row else None


def envelopes_by_id(conn: Connection, envelope_ids: Sequence[str]) -> dict[str, EnvelopeRow]:
    if not envelope_ids:
        return {}
    rows = conn.execute(select(envelopes).where(envelopes.c.envelope_id.in_(envelope_ids)))
    return {row.envelope_id: _envelope(row) for row in rows}


def attachments_of(conn: Connection, envelope_ids: Sequence[str]) -> dict[str, list[AttachmentRow]]:
    """Each envelope's attachments, in the order they were given."""
    found: dict[str, list[AttachmentRow]] = {envelope_id: [] for envelope_id in envelope_ids}
    if not envelope_ids:
        return found
    stmt = (
        select(envelope_attachments.c.envelope_id, attachments)
        .join(attachments, attachments.c.attachment_id == envelope_attachments.c.attachment_id)
        .where(envelope_attachments.c.envelope_id.in_(envelope_ids))
        .order_by(envelope_attachments.c.envelope_id, envelope_attachments.c.position)
    )
    for row in conn.execute(stmt):
        found[row.envelope_id].append(_attachment(row))
    return found


def staged(conn: Connection, owner_id: str, attachment_ids: Sequence[str]) -> dict[str, AttachmentRow]:
    """The caller's own attachments among ``attachment_ids`` that still have their bytes."""
    wanted = [a for a in attachment_ids if storable(a)]
    if not wanted:
        return {}
    stmt = select(attachments).where(
        attachments.c.attachment_id.in_(wanted),
        attachments.c.owner_id == owner_id,
        attachments.c.purged.is_(False),
    )
    return {row.attachment_id: _attachment(row) for row in conn.execute(stmt)}


def attachment(conn: Connection, attachment_id: str) -> AttachmentRow | None:
    if not storable(attachment_id):
        return None
    row = conn.execute(select(attachments).where(attachments.c.attachment_id == attachment_id)).first()
    return _attachment(row) if row else None


def delivery(conn: Connection, message_id: str) -> DeliveryRow | None:
    rows = deliveries_by_id(conn, [message_id])
    return rows.get(message_id)


def deliveries_by_id(conn: Connection, message_ids: Sequence[str]) -> dict[str, DeliveryRow]:
    if not message_ids:
        return {}
    stmt = select(
        *[c for c in deliveries.columns if c.name != "receipt"],
        deliveries.c.receipt.is_not(None).label("has_receipt"),
    ).where(deliveries.c.message_id.in_(message_ids))
    return {
        row.message_id: DeliveryRow(
            message_id=row.message_id,
            envelope_id=row.envelope_id,
            read=bool(row.read),
            read_at=row.read_at,
            delivered_at=row.delivered_at,
            sender_hidden=bool(row.sender_hidden),
            has_receipt=bool(row.has_receipt),
        )
        for row in conn.execute(stmt)
    }


def delivery_ids_of(conn: Connection, envelope_ids: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {envelope_id: [] for envelope_id in envelope_ids}
    if not envelope_ids:
        return found
    stmt = (
        select(deliveries.c.envelope_id, deliveries.c.message_id)
        .join(messages, messages.c.message_id == deliveries.c.message_id)
        .where(deliveries.c.envelope_id.in_(envelope_ids))
        .order_by(messages.c.created_at, messages.c.message_id)
    )
    for row in conn.execute(stmt):
        found[row.envelope_id].append(row.message_id)
    return found


def receipt(conn: Connection, message_id: str) -> bytes | None:
    stmt = select(deliveries.c.receipt).where(deliveries.c.message_id == message_id)
    value = conn.execute(stmt).scalar_one_or_none()
    return bytes(value) if value is not None else None


def envelope_id_of(tx: Connection | Tx, message_id: str) -> str | None:
    """The envelope a delivery belongs to (None for a MESH message)."""
    row = Tx.of(tx).first(_ENVELOPE_OF, {"id": message_id})
    return str(row[0]) if row and row[0] is not None else None


_ENVELOPE_OF = Prepared(
    lambda _: select(deliveries.c.envelope_id).where(deliveries.c.message_id == bindparam("id"))
)


# -- one message, on the hot statements (a ``Tx`` of ``write_async``/``read_async``) -------------------
def _retrieved_upsert(dialect: str) -> Any:
    """Mark a delivery retrieved (and read, when asked): its row made first for a MESH message;
    the first retrieval's time is kept."""
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = dialect_insert(deliveries)
    excluded = stmt.excluded
    read = func.coalesce(bindparam("set_read", type_=deliveries.c.read.type), deliveries.c.read)
    return stmt.on_conflict_do_update(
        index_elements=["message_id"],
        set_={
            "read": read,
            "read_at": func.coalesce(
                bindparam("set_read_at", type_=deliveries.c.read_at.type), deliveries.c.read_at
            ),
            "delivered_at": func.coalesce(deliveries.c.delivered_at, excluded.delivered_at),
        },
    )


_RETRIEVED = Prepared(
    _retrieved_upsert, ["message_id", "envelope_id", "read", "read_at", "delivered_at", "sender_hidden"]
)
_NEVER_EXPIRE = Prepared(
    lambda _: update(messages).where(messages.c.message_id == bindparam("id")), ["inbox_expires_at"]
)
_DELIVERY_BY_ID = Prepared(
    lambda _: select(
        deliveries.c.message_id,
        deliveries.c.envelope_id,
        deliveries.c.read,
        deliveries.c.read_at,
        deliveries.c.delivered_at,
        deliveries.c.sender_hidden,
        deliveries.c.receipt.is_not(None),
    ).where(deliveries.c.message_id == bindparam("id"))
)
_ENVELOPE_BY_ID = Prepared(lambda _: select(envelopes).where(envelopes.c.envelope_id == bindparam("id")))
_ATTACHMENTS_OF_ONE = Prepared(
    lambda _: (
        select(attachments)
        .join(envelope_attachments, attachments.c.attachment_id == envelope_attachments.c.attachment_id)
        .where(envelope_attachments.c.envelope_id == bindparam("id"))
        .order_by(envelope_attachments.c.position)
    )
)


def retrieved_in(tx: Connection | Tx, message_id: str, now: datetime, *, read: bool) -> None:
    """A recipient retrieved a delivery through this API: delivered from now (the first time
    kept), read if ``read``, and no longer expiring (it stays until deleted)."""
    hot = Tx.of(tx)
    hot.execute(
        _RETRIEVED,
        {
            "message_id": message_id,
            "envelope_id": None,
            "read": read,
            "read_at": now if read else None,
            "delivered_at": now,
            "sender_hidden": False,
            "set_read": True if read else None,
            "set_read_at": now if read else None,
        },
    )
    hot.execute(_NEVER_EXPIRE, {"id": message_id, "inbox_expires_at": None})


_UNREAD = Prepared(
    lambda _: update(deliveries).where(deliveries.c.message_id == bindparam("id")), ["read", "read_at"]
)


def unread_in(tx: Connection | Tx, message_id: str) -> None:
    Tx.of(tx).execute(_UNREAD, {"id": message_id, "read": False, "read_at": None})


def delivery_in(tx: Connection | Tx, message_id: str) -> DeliveryRow | None:
    row = Tx.of(tx).first(_DELIVERY_BY_ID, {"id": message_id})
    if row is None:
        return None
    return DeliveryRow(row[0], row[1], bool(row[2]), row[3], row[4], bool(row[5]), bool(row[6]))


def envelope_in(tx: Connection | Tx, envelope_id: str) -> EnvelopeRow | None:
    row = Tx.of(tx).first(_ENVELOPE_BY_ID, {"id": envelope_id})
    return EnvelopeRow(*row) if row else None


def attachments_in(tx: Connection | Tx, envelope_id: str) -> list[AttachmentRow]:
    return [AttachmentRow(*row) for row in Tx.of(tx).rows(_ATTACHMENTS_OF_ONE, {"id": envelope_id})]


# -- lists ----------------------------------------------------------------------------------------
def _joined() -> Any:
    return messages.outerjoin(deliveries, deliveries.c.message_id == messages.c.message_id)


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    return func.lower(column).contains(text.lower(), autoescape=True)


def inbox_page(conn: Connection, mailbox_id: str, query: ListQuery) -> tuple[list[str], int]:
    """Received messages waiting in ``mailbox_id``'s inbox (any face's), a page of ids and the
    total."""
    where: list[ColumnElement[bool]] = [
        messages.c.recipient_id == mailbox_id,
        messages.c.status == MessageStatus.ACCEPTED.value,
    ]
    if not query.fetch_all:
        where.append(or_(deliveries.c.read.is_(None), deliveries.c.read.is_(False)))
    where.extend(_filters(query, mailbox_id, own=messages.c.recipient_id, other=messages.c.sender_id))
    where.extend(_id_filter(query, messages.c.message_id))
    order = messages.c.accepted_at.desc() if query.descending else messages.c.accepted_at.asc()
    tie = messages.c.message_id.desc() if query.descending else messages.c.message_id.asc()
    base = select(messages.c.message_id).select_from(_joined()).where(*where)
    total = conn.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    ids = conn.execute(base.order_by(order, tie).limit(query.limit).offset(query.offset)).scalars()
    return list(ids), int(total)


def _filters(query: ListQuery, mailbox_id: str, *, own: Any, other: Any) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.station is not None and query.station.upper() != mailbox_id:
        where.append(false())  # a station other than the caller's own mailbox: nothing
    if query.partner is not None:
        where.append(other == query.partner.upper() if storable(query.partner) else false())
    if query.subject is not None:
        where.append(_contains(messages.c.subject, query.subject) if storable(query.subject) else false())
    return where


def _id_filter(query: ListQuery, column: Any) -> list[ColumnElement[bool]]:
    if query.message_id is None:
        return []
    if not storable(query.message_id):
        return [false()]
    return [column == query.message_id.upper()]


_SENT_KEY = func.coalesce(deliveries.c.envelope_id, messages.c.message_id)


def _box_clause(box: Box, incomplete_before: datetime) -> ColumnElement[bool]:
    status = messages.c.status
    if box is Box.SENT:
        return status.in_([MessageStatus.ACCEPTED.value, MessageStatus.ACKNOWLEDGED.value])
    if box is Box.QUEUED:
        return status == MessageStatus.UPLOADING.value
    if box is Box.FAILED:
        return status.in_([MessageStatus.UNDELIVERABLE.value, MessageStatus.ERROR.value])
    return and_(
        status == MessageStatus.ACCEPTED.value,
        deliveries.c.delivered_at.is_(None),
        messages.c.accepted_at < incomplete_before,
    )


def outbox_page(
    conn: Connection, mailbox_id: str, box: Box, query: ListQuery, incomplete_before: datetime
) -> tuple[list[str], int]:
    """Sent messages: one per envelope (or MESH message) with a delivery in ``box``."""
    hidden_envelope = exists().where(
        envelopes.c.envelope_id == deliveries.c.envelope_id, envelopes.c.sender_deleted_at.is_not(None)
    )
    where: list[ColumnElement[bool]] = [
        messages.c.sender_id == mailbox_id,
        messages.c.message_type == "DATA",
        or_(deliveries.c.sender_hidden.is_(None), deliveries.c.sender_hidden.is_(False)),
        not_(hidden_envelope),
        _box_clause(box, incomplete_before),
    ]
    where.extend(_filters(query, mailbox_id, own=messages.c.sender_id, other=messages.c.recipient_id))
    where.extend(_id_filter(query, _SENT_KEY))
    grouped: Select[Any] = (
        select(_SENT_KEY.label("sent_id"), func.min(messages.c.created_at).label("created"))
        .select_from(_joined())
        .where(*where)
        .group_by(_SENT_KEY)
    )
    sub = grouped.subquery()
    total = conn.execute(select(func.count()).select_from(sub)).scalar_one()
    order = (
        (sub.c.created.desc(), sub.c.sent_id.desc()) if query.descending else (sub.c.created, sub.c.sent_id)
    )
    page = select(sub.c.sent_id).order_by(*order).limit(query.limit).offset(query.offset)
    return list(conn.execute(page).scalars()), int(total)


# -- maintenance ----------------------------------------------------------------------------------------
def existing_attachment_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    stmt = select(attachments.c.attachment_id).where(attachments.c.attachment_id.in_(ids))
    return set(conn.execute(stmt).scalars())


def _unlinked() -> ColumnElement[bool]:
    return not_(exists().where(envelope_attachments.c.attachment_id == attachments.c.attachment_id))


def stale_staged(conn: Connection, cutoff: datetime, limit: int) -> list[AttachmentRow]:
    """Attachments no message uses, uploaded before ``cutoff``."""
    stmt = (
        select(attachments)
        .where(attachments.c.created_at < cutoff, _unlinked())
        .order_by(attachments.c.created_at)
        .limit(limit)
    )
    return [_attachment(row) for row in conn.execute(stmt)]


def delete_attachment(conn: Connection, attachment_id: str) -> bool:
    """An attachment's row, if no message uses it (then its bytes are deleted)."""
    stmt = delete(attachments).where(attachments.c.attachment_id == attachment_id, _unlinked())
    return bool(conn.execute(stmt).rowcount)


def purgeable_attachments(conn: Connection, limit: int) -> list[AttachmentRow]:
    """Linked attachments whose every delivery (of every envelope using them) is purged or gone."""
    needed = (
        select(literal(1))
        .select_from(
            envelope_attachments.join(
                deliveries, deliveries.c.envelope_id == envelope_attachments.c.envelope_id
            ).join(messages, messages.c.message_id == deliveries.c.message_id)
        )
        .where(
            envelope_attachments.c.attachment_id == attachments.c.attachment_id,
            messages.c.payload_purged.is_(False),
        )
    )
    stmt = (
        select(attachments)
        .where(attachments.c.purged.is_(False), not_(_unlinked()), not_(exists(needed)))
        .limit(limit)
    )
    return [_attachment(row) for row in conn.execute(stmt)]


def mark_attachment_purged(conn: Connection, attachment_id: str) -> None:
    conn.execute(
        update(attachments).where(attachments.c.attachment_id == attachment_id).values(purged=True, data=None)
    )


def forget_envelopes(conn: Connection, limit: int) -> list[str]:
    """Envelopes none of whose deliveries is left (their rows forgotten), with their links and
    their attachments that no other envelope uses and whose bytes are purged."""
    orphaned = (
        select(envelopes.c.envelope_id)
        .where(not_(exists().where(deliveries.c.envelope_id == envelopes.c.envelope_id)))
        .limit(limit)
    )
    ids = list(conn.execute(orphaned).scalars())
    if not ids:
        return ids
    used = list(
        conn.execute(
            select(envelope_attachments.c.attachment_id).where(envelope_attachments.c.envelope_id.in_(ids))
        ).scalars()
    )
    conn.execute(delete(envelope_attachments).where(envelope_attachments.c.envelope_id.in_(ids)))
    conn.execute(delete(envelopes).where(envelopes.c.envelope_id.in_(ids)))
    if used:
        conn.execute(
            delete(attachments).where(
                attachments.c.attachment_id.in_(used), attachments.c.purged.is_(True), _unlinked()
            )
        )
    return ids
