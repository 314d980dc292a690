"""Sending: plan a send, store chunk bytes, record them, and make the message visible when complete.

The order is what keeps accepted messages safe and partial ones invisible:
1. validate everything that can be validated before reading the body;
2. stream the body into the payload store (durable on disk when ``put`` returns), unless it is
   small and already in memory (``Settings.inline_payload_bytes``): then its bytes go into the
   chunk row, durable with step 3's commit, and cost no file, directory or fsync of their own;
3. record the chunk in one transaction; only the transaction that records the last missing
   chunk moves the message to ``accepted``, which is what puts it in the inbox.
A crash between 2 and 3 leaves an orphan payload with no row, which the sweep removes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from mailroom.clock import Clock
from mailroom.domain.compression import GzipCheck, NotGzip, gzip_checked
from mailroom.domain.mailboxes import Mailbox, WorkflowRole
from mailroom.domain.messages import (
    ChunkRange,
    Message,
    MessageStatus,
    MessageType,
    Metadata,
    Party,
    StatusDetail,
)
from mailroom.errors import (
    ChunkOutOfRange,
    Forbidden,
    Locked,
    MessageNotFound,
    NotGzipBody,
    PayloadTooLarge,
    SendRejected,
)
from mailroom.ids import new_message_id
from mailroom.services.authentication import MailboxPrincipal
from mailroom.services.mailbox_cache import MailboxCache
from mailroom.settings import Settings
from mailroom.storage.db import Database
from mailroom.storage.hot import Tx
from mailroom.storage.payloads import PayloadStore, chunk_key
from mailroom.storage.repos import mailboxes, messages
from mailroom.storage.repos.messages import ChunkRow


@dataclass(frozen=True)
class SendRequest:
    """A validated request to send chunk 1 (or the whole) of a new message."""

    recipient_id: str
    sender_claim: str  # Mex-From, "" when absent
    chunks: ChunkRange
    meta: Metadata


@dataclass(frozen=True)
class SendPlan:
    message_id: str
    sender: Party
    recipient: Party
    request: SendRequest


@dataclass(frozen=True)
class ChunkPlan:
    message_id: str
    chunk: ChunkRange
    max_bytes: int
    gzip: bool = False  # Content-Encoding: gzip, the body checked as it is stored


def party(mailbox: Mailbox) -> Party:
    return Party(
        mailbox_id=mailbox.mailbox_id,
        name=mailbox.mailbox_name,
        ods_code=mailbox.ods_code,
        org_code=mailbox.org_code,
        org_name=mailbox.org_name,
        billing_entity=mailbox.billing_entity,
    )


class LimitExceeded(Exception):
    """Raised inside a payload stream; the caller turns it into PayloadTooLarge."""


def limited(data: Iterable[bytes], max_bytes: int) -> Iterable[bytes]:
    """Pass ``data`` through, failing as soon as more than ``max_bytes`` have gone by."""
    seen = 0
    for piece in data:
        seen += len(piece)
        if seen > max_bytes:
            raise LimitExceeded
        yield piece


class SendingService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        payloads: PayloadStore,
        clock: Clock,
        mailbox_cache: MailboxCache,
    ) -> None:
        self._settings = settings
        self._db = db
        self._mailboxes = mailbox_cache
        self._payloads = payloads
        self._clock = clock

    # -- chunk 1 -----------------------------------------------------------------------------
    def plan_send(self, principal: MailboxPrincipal, request: SendRequest) -> SendPlan:
        """Every check that does not need the body, in mesh-sandbox's order."""
        if (
            self._settings.check_mex_from
            and request.sender_claim
            and (request.sender_claim.upper() != principal.mailbox_id)
        ):
            raise SendRejected("Invalid From address", code="07")
        recipient = self._mailboxes.get(request.recipient_id)
        if recipient is None or not recipient.active:
            raise SendRejected("Unregistered to address", code="12")
        if self._settings.enforce_workflows:
            with self._db.read() as conn:
                self._check_workflow(
                    conn, principal.mailbox_id, recipient.mailbox_id, request.meta.workflow_id
                )
        return SendPlan(
            message_id=new_message_id(self._clock.now()),
            sender=party(principal.mailbox),
            recipient=party(recipient),
            request=request,
        )

    @staticmethod
    def _check_workflow(conn: Connection, sender: str, recipient: str, workflow_id: str) -> None:
        """Real MESH restricts only some workflows: those with registrations here."""
        if not mailboxes.workflow_known(conn, workflow_id):
            return
        if not mailboxes.is_registered(conn, workflow_id, sender, WorkflowRole.SENDER):
            raise SendRejected("Sender is not allowed to send messages of this type", code="16")
        if not mailboxes.is_registered(conn, workflow_id, recipient, WorkflowRole.RECEIVER):
            raise SendRejected("Workflow ID not registered for mailbox", code="17")

    def send(self, principal: MailboxPrincipal, request: SendRequest, body: Iterable[bytes]) -> Message:
        """``plan_send`` then ``store_first_chunk`` in one call, for a body already in memory."""
        return self.store_first_chunk(self.plan_send(principal, request), body)

    def store_first_chunk(self, plan: SendPlan, body: Iterable[bytes]) -> Message:
        """Stream chunk 1 to storage, then record the message (visible if it is complete)."""
        limit = min(self._settings.max_chunk_bytes, self._settings.max_message_bytes)
        chunk = self._store(plan.message_id, 1, body, limit, gzip=_is_gzip(plan))
        if chunk.size == 0:
            self._discard(chunk)
            raise SendRejected("Data file is missing or inaccessible.", event="COLLECT", code="02")
        message = self._new_message(plan, chunk.size, self._clock.now())
        try:
            with self._db.hot_write() as tx:
                _record_first_chunk(tx, message, chunk)
        except BaseException:
            self._discard(chunk)
            raise
        return message

    def records_in_row(self, size: int) -> bool:
        """Whether a body of ``size`` bytes, in memory, is stored by ``send_in`` alone: kept in
        its row (``Settings.inline_payload_bytes``), on SQLite (one group-commit job)."""
        return self._db.is_sqlite and 0 < size <= self._settings.inline_payload_bytes

    def keeps_in_row(self, size: int) -> bool:
        """Whether a chunk of ``size`` bytes, in memory, is kept in its row rather than written to
        the payload store (``Settings.inline_payload_bytes``)."""
        inline_up_to = self._settings.inline_payload_bytes
        return bool(inline_up_to) and size <= inline_up_to

    def send_in(self, tx: Tx, principal: MailboxPrincipal, request: SendRequest, body: bytes) -> Message:
        """``send`` inside a write transaction, for a body ``records_in_row`` accepts: checked,
        built and recorded with no payload file (its bytes go in the chunk row)."""
        if not self.records_in_row(len(body)):
            raise ValueError("send_in takes bodies stored in their row only")
        plan = self.plan_send(principal, request)
        limit = min(self._settings.max_chunk_bytes, self._settings.max_message_bytes)
        chunk = self._store(plan.message_id, 1, [body], limit, gzip=_is_gzip(plan))
        message = self._new_message(plan, chunk.size, self._clock.now())
        _record_first_chunk(tx, message, chunk)
        return message

    def _new_message(self, plan: SendPlan, size: int, now: datetime) -> Message:
        complete = plan.request.chunks.total == 1
        return Message(
            message_id=plan.message_id,
            message_type=MessageType.DATA,
            sender=plan.sender,
            recipient=plan.recipient,
            meta=plan.request.meta,
            total_chunks=plan.request.chunks.total,
            file_size=size,
            status=MessageStatus.ACCEPTED if complete else MessageStatus.UPLOADING,
            detail=StatusDetail(),
            created_at=now,
            status_at=now,
            accepted_at=now if complete else None,
            acknowledged_at=None,
            inbox_expires_at=now + self._settings.inbox_retention,
        )

    # -- chunks 2..n ---------------------------------------------------------------------------
    def plan_chunk(
        self, principal: MailboxPrincipal, message_id: str, chunk: ChunkRange, content_encoding: str
    ) -> ChunkPlan:
        with self._db.read() as conn:
            message = messages.get(conn, message_id)
            if message is None:
                raise MessageNotFound(message_id=message_id)
            _count, stored_size = messages.chunk_totals(conn, message_id)
            resent = messages.get_chunk(conn, message_id, chunk.number)
        self._check_chunk(principal, message, chunk, content_encoding)
        # a re-sent chunk replaces the stored copy, so the old bytes do not count towards the total
        room = self._settings.max_message_bytes - stored_size + (resent.size if resent else 0)
        limit = max(0, min(self._settings.max_chunk_bytes, room))
        return ChunkPlan(message_id, chunk, limit, gzip=content_encoding == "gzip")

    @staticmethod
    def _check_chunk(
        principal: MailboxPrincipal, message: Message, chunk: ChunkRange, content_encoding: str
    ) -> None:
        if message.sender.mailbox_id != principal.mailbox_id:
            raise Forbidden(message_id=message.message_id)
        if message.status is not MessageStatus.UPLOADING:
            raise Locked(message_id=message.message_id)
        if message.message_type is not MessageType.DATA or chunk.number > message.total_chunks:
            raise ChunkOutOfRange(message_id=message.message_id)
        if chunk.total != message.total_chunks:
            raise SendRejected(
                "Invalid chunk values in mex-Chunk-Range",
                code="InvalidHeaderChunks",
                message_id=message.message_id,
            )
        if content_encoding != message.meta.content_encoding:
            raise SendRejected(
                "cannot change content encoding", code="", event="", message_id=message.message_id
            )

    def store_chunk(self, principal: MailboxPrincipal, plan: ChunkPlan, body: Iterable[bytes]) -> Message:
        """Store chunk n (a re-sent chunk replaces the old bytes); complete the message if all are in."""
        chunk = self._store(plan.message_id, plan.chunk.number, body, plan.max_bytes, gzip=plan.gzip)
        try:
            updated, replaced = self._record_chunk(plan, chunk)
        except BaseException:
            self._discard(chunk)
            raise
        if replaced:
            self._payloads.delete(replaced)
        return updated

    def _record_chunk(self, plan: ChunkPlan, chunk: ChunkRow) -> tuple[Message, str | None]:
        now = self._clock.now()
        with self._db.write() as conn:
            message = messages.get(conn, plan.message_id, for_update=True)
            if message is None:
                raise MessageNotFound(message_id=plan.message_id)
            if message.status is not MessageStatus.UPLOADING:
                # completed or reset while this chunk streamed: the bytes on disk are the ones
                # already recorded (same chunk resent) or belong to no visible message.
                raise Locked(message_id=plan.message_id)
            replaced = messages.upsert_chunk(conn, plan.message_id, chunk, now)
            count, size = messages.chunk_totals(conn, plan.message_id)
            if size > self._settings.max_message_bytes:
                raise PayloadTooLarge("Message exceeds the maximum total size", message_id=plan.message_id)
            if count == message.total_chunks:
                messages.change_status(
                    conn,
                    plan.message_id,
                    MessageStatus.ACCEPTED,
                    now,
                    only_from=[MessageStatus.UPLOADING],
                    file_size=size,
                    accepted_at=now,
                )
            updated = messages.get(conn, plan.message_id)
        assert updated is not None
        return updated, replaced

    def _store(
        self, message_id: str, chunk_no: int, body: Iterable[bytes], max_bytes: int, *, gzip: bool = False
    ) -> ChunkRow:
        """Store a chunk's bytes: durable in the payload store when this returns, or, for a small
        body already in memory, kept for the row (durable with the commit that records it).
        ``gzip``: the body is declared gzip, and refused (``NotGzipBody``) if it is not."""
        known = message_id if chunk_no > 1 else None
        if isinstance(body, list | tuple):
            size = sum(len(piece) for piece in body)
            if self.keeps_in_row(size):
                if size > max_bytes:
                    raise PayloadTooLarge(message_id=known)
                data = b"".join(body)
                if gzip:
                    _check_gzip(data, known)
                return ChunkRow(chunk_no, size, hashlib.sha256(data).hexdigest(), "", data)
        key = chunk_key(message_id, chunk_no)
        pieces = limited(body, max_bytes)
        try:
            stored = self._payloads.put(key, gzip_checked(pieces) if gzip else pieces)
        except LimitExceeded:
            raise PayloadTooLarge(message_id=known) from None
        except NotGzip:
            raise NotGzipBody(message_id=known) from None
        return ChunkRow(chunk_no, stored.size, stored.sha256, key)

    def _discard(self, chunk: ChunkRow) -> None:
        """Remove stored bytes no row will point to (nothing to do for a chunk kept in its row)."""
        if not chunk.inline:
            self._payloads.delete(chunk.payload_key)


def _is_gzip(plan: SendPlan) -> bool:
    return plan.request.meta.content_encoding == "gzip"


def _check_gzip(data: bytes, message_id: str | None) -> None:
    check = GzipCheck()
    try:
        check.feed(data)
        check.finish()
    except NotGzip:
        raise NotGzipBody(message_id=message_id) from None


def _record_first_chunk(tx: Tx, message: Message, chunk: ChunkRow) -> None:
    """A new message's rows: the message (visible if complete), its first event and chunk 1."""
    messages.insert_message(tx, message)
    messages.add_event(tx, message.message_id, message.status, message.created_at)
    messages.insert_chunk(tx, message.message_id, chunk, message.created_at)
