"""Messages as the JSON API shows them, built from the rows of either face.

A received message is a delivery (``messages`` row): with an envelope, its subject, body and
attachments are the envelope's; without one (a MESH message), its MESH subject and its payload
as one attachment named by ``Mex-FileName``. A sent message is an envelope with all its
deliveries, or a MESH message the caller sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection

from mailroom.domain.envelopes import (
    AttachmentInfo,
    DeliveryInfo,
    DeliveryState,
    Face,
    MessageView,
    delivery_state,
)
from mailroom.domain.messages import Message, MessageStatus, MessageType
from mailroom.errors import LinkRefused
from mailroom.services import envelope_payloads
from mailroom.settings import Settings
from mailroom.storage.db import Database
from mailroom.storage.hot import Tx
from mailroom.storage.payloads import PayloadStore
from mailroom.storage.repos import envelopes, messages
from mailroom.storage.repos.envelopes import AttachmentRow, DeliveryRow, EnvelopeRow
from mailroom.storage.repos.messages import ChunkRow

Opener = Callable[[int, int], Iterator[bytes]]


def _info(row: AttachmentRow) -> AttachmentInfo:
    return AttachmentInfo(row.attachment_id, row.name, row.content_type, row.size, row.sha256)


def mesh_attachment(message: Message) -> list[AttachmentInfo]:
    """A MESH message's payload as one attachment (none for a report or an empty message)."""
    if message.message_type is not MessageType.DATA or message.total_chunks < 1:
        return []
    content_type = message.meta.content_type or envelope_payloads.DEFAULT_TYPE
    if message.meta.content_encoding == "gzip":
        content_type = "application/gzip"  # served as stored: compressed by its sender
    return [
        AttachmentInfo(message.message_id, message.file_name_or_default, content_type, message.file_size, "")
    ]


def _delivery_info(message: Message, row: DeliveryRow | None) -> DeliveryInfo:
    delivered_at = row.delivered_at if row else None
    state = delivery_state(message.status, delivered_at is not None)
    reason = message.detail.description if state is DeliveryState.FAILED else ""
    return DeliveryInfo(
        message_id=message.message_id,
        recipient_id=message.recipient.mailbox_id,
        state=state,
        reason=reason or ("failed" if state is DeliveryState.FAILED else ""),
        status_at=message.status_at,
        delivered_at=delivered_at or message.acknowledged_at,
    )


class ViewBuilder:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def received(
        self, conn: Connection, ids: Sequence[str], *, any_status: bool = False
    ) -> list[MessageView]:
        found = messages.get_many(conn, ids)
        rows = envelopes.deliveries_by_id(conn, list(found))
        envelope_ids = sorted({r.envelope_id for r in rows.values() if r.envelope_id})
        heads = envelopes.envelopes_by_id(conn, envelope_ids)
        parts = envelopes.attachments_of(conn, envelope_ids)
        views = []
        for message_id in ids:
            message = found.get(message_id)
            if message is None or (not any_status and message.status is not MessageStatus.ACCEPTED):
                continue
            row = rows.get(message_id)
            head = heads.get(row.envelope_id) if row and row.envelope_id else None
            views.append(self._received(message, row, head, parts.get(head.envelope_id, []) if head else []))
        return views

    def received_in(self, tx: Tx, message: Message) -> MessageView:
        """One received message's view from the hot statements (inside ``write_async``)."""
        row = envelopes.delivery_in(tx, message.message_id)
        head = envelopes.envelope_in(tx, row.envelope_id) if row and row.envelope_id else None
        parts = envelopes.attachments_in(tx, head.envelope_id) if head else []
        return self._received(message, row, head, parts)

    @staticmethod
    def _received(
        message: Message, row: DeliveryRow | None, head: EnvelopeRow | None, parts: list[AttachmentRow]
    ) -> MessageView:
        return MessageView(
            message_id=message.message_id,
            incoming=True,
            sender_id=message.sender.mailbox_id,
            subject=head.subject if head else message.meta.subject,
            body=head.body if head else "",
            created_at=message.created_at,
            local_id=message.meta.local_id,
            workflow_id=message.meta.workflow_id,
            face=Face(head.face) if head else Face.MESH,
            attachments=[_info(p) for p in parts] if head else mesh_attachment(message),
            deliveries=[_delivery_info(message, row)],
            read=bool(row and row.read),
            recipients=[message.recipient.mailbox_id],
        )

    def sent(self, conn: Connection, mailbox_id: str, ids: Sequence[str]) -> list[MessageView]:
        heads = {
            k: v
            for k, v in envelopes.envelopes_by_id(conn, list(ids)).items()
            if v.sender_id == mailbox_id and v.sender_deleted_at is None
        }
        delivery_ids = envelopes.delivery_ids_of(conn, list(heads))
        all_ids = [m for group in delivery_ids.values() for m in group]
        plain = [i for i in ids if i not in heads]
        found = messages.get_many(conn, all_ids + plain)
        rows = envelopes.deliveries_by_id(conn, list(found))
        parts = envelopes.attachments_of(conn, list(heads))
        views = []
        for sent_id in ids:
            head = heads.get(sent_id)
            if head is not None:
                group = [found[m] for m in delivery_ids[sent_id] if m in found]
                if group:
                    views.append(self._sent_envelope(head, group, rows, parts[sent_id]))
                continue
            message = found.get(sent_id)
            row = rows.get(sent_id)
            if (
                message is None
                or message.sender.mailbox_id != mailbox_id
                or message.message_type is not MessageType.DATA
                or (row is not None and (row.envelope_id or row.sender_hidden))
            ):
                continue
            views.append(self._sent_mesh(message, row))
        return views

    @staticmethod
    def _sent_envelope(
        head: EnvelopeRow, group: list[Message], rows: dict[str, DeliveryRow], parts: list[AttachmentRow]
    ) -> MessageView:
        return MessageView(
            message_id=head.envelope_id,
            incoming=False,
            sender_id=head.sender_id,
            subject=head.subject,
            body=head.body,
            created_at=head.created_at,
            local_id=head.local_id,
            workflow_id=group[0].meta.workflow_id,
            face=Face(head.face),
            attachments=[_info(p) for p in parts],
            deliveries=[_delivery_info(m, rows.get(m.message_id)) for m in group],
            recipients=[m.recipient.mailbox_id for m in group],
        )

    @staticmethod
    def _sent_mesh(message: Message, row: DeliveryRow | None) -> MessageView:
        return MessageView(
            message_id=message.message_id,
            incoming=False,
            sender_id=message.sender.mailbox_id,
            subject=message.meta.subject,
            body="",
            created_at=message.created_at,
            local_id=message.meta.local_id,
            workflow_id=message.meta.workflow_id,
            face=Face.MESH,
            attachments=mesh_attachment(message),
            deliveries=[_delivery_info(message, row)],
            recipients=[message.recipient.mailbox_id],
        )

    # -- files ----------------------------------------------------------------------------------
    @staticmethod
    def stored_key(db: Database, attachment_id: str) -> str | None:
        """The payload key holding all of an attachment's bytes, if one does (S3 can presign it)."""
        with db.read() as conn:
            row = envelopes.attachment(conn, attachment_id)
            if row is not None:
                return row.payload_key if row.payload_key and not row.purged else None
            chunks = messages.chunks_of(conn, attachment_id)
        return chunks[0].payload_key or None if len(chunks) == 1 else None

    def attachment_opener(
        self, conn: Connection, payloads: PayloadStore, claims: dict[str, str]
    ) -> tuple[str, str, int, Opener]:
        """(name, type, size, opener) of the attachment a link names, checked again now: its
        message still holds it and the link's owner still sends or receives that message."""
        holder, wanted, owner = claims.get("m", ""), claims.get("a", ""), claims.get("o", "")
        row = envelopes.attachment(conn, wanted)
        if row is None:
            return self._mesh_opener(conn, payloads, holder, wanted, owner)
        if row.purged or not self._may_open(conn, holder, wanted, owner):
            raise LinkRefused()
        return row.name, row.content_type, row.size, partial_opener(payloads, row)

    @staticmethod
    def _may_open(conn: Connection, holder: str, attachment_id: str, owner: str) -> bool:
        candidates = []
        head = envelopes.envelope(conn, holder)
        if head is not None and head.sender_id == owner:
            candidates.append(holder)
        message = messages.get(conn, holder)
        if message is not None and message.recipient.mailbox_id == owner:
            envelope_id = envelopes.envelope_id_of(conn, holder)
            if envelope_id:
                candidates.append(envelope_id)
        linked = envelopes.attachments_of(conn, candidates)
        return any(p.attachment_id == attachment_id for group in linked.values() for p in group)

    @staticmethod
    def _mesh_opener(
        conn: Connection, payloads: PayloadStore, holder: str, wanted: str, owner: str
    ) -> tuple[str, str, int, Opener]:
        message = messages.get(conn, wanted)
        if (
            message is None
            or holder != wanted
            or owner not in (message.recipient.mailbox_id, message.sender.mailbox_id)
        ):
            raise LinkRefused()
        info = mesh_attachment(message)
        if not info:
            raise LinkRefused()
        chunks = messages.chunks_of(conn, wanted)
        size = sum(chunk.size for chunk in chunks)
        return info[0].name, info[0].content_type, size, _bound(_chunks_range, payloads, chunks)


def partial_opener(payloads: PayloadStore, row: AttachmentRow) -> Opener:
    return lambda start, end: envelope_payloads.open_attachment(payloads, row, start, end)


def _bound(function: Callable[..., Iterator[bytes]], *args: Any) -> Opener:
    return lambda start, end: function(*args, start, end)


def _chunks_range(payloads: PayloadStore, chunks: list[ChunkRow], start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of a MESH payload stored in several chunks."""
    offset = 0
    for chunk in chunks:
        low, high = max(start, offset), min(end, offset + chunk.size)
        if low < high:
            if chunk.inline:
                if chunk.data is None:
                    raise LinkRefused("The file of this link is no longer kept")
                yield chunk.data[low - offset : high - offset]
            else:
                yield from payloads.open_range(chunk.payload_key, low - offset, high - offset)
        offset += chunk.size
