"""Receiving: inbox pages, counts, downloads and acknowledgement."""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import Connection

from mailroom.clock import Clock
from mailroom.domain.messages import Message, MessageStatus, WorkflowFilter
from mailroom.errors import Forbidden, Gone, MessageNotFound, ValidationFailed
from mailroom.ids import require_message_id
from mailroom.services import envelope_payloads
from mailroom.services.authentication import MailboxPrincipal
from mailroom.settings import AfterAck, Settings
from mailroom.storage.db import Database
from mailroom.storage.hot import Tx
from mailroom.storage.payloads import PayloadMissing, PayloadStore
from mailroom.storage.repos import envelopes, messages
from mailroom.storage.repos.messages import ChunkRow, InboxPosition

RICH_WINDOW = timedelta(days=30)
#: v2 inbox pages carry ``approx_inbox_count``. Inboxes up to this many waiting messages are
#: counted exactly on every page; a deeper one reuses its last count for up to
#: ``APPROX_COUNT_SECONDS``, so paging through a deep inbox does not scan it once per page
#: (counting 100,000 rows costs tens of milliseconds; the page itself well under one).
EXACT_COUNT_UP_TO = 1000
APPROX_COUNT_SECONDS = 10.0


@dataclass(frozen=True)
class InboxPage:
    message_ids: list[str]
    next_token: str | None  # opaque v2 token; None on the last page
    approx_count: int | None  # None unless asked for (counting a deep inbox is not free)


@dataclass(frozen=True)
class Download:
    """A message and the chunk asked for (None for a REPORT, whose body is empty)."""

    message: Message
    chunk_no: int
    chunk: ChunkRow | None
    #: a JSON API message's payload, composed from its envelope as it is read (no chunk rows)
    composed: Callable[[], Iterator[bytes]] | None = None


@dataclass(frozen=True)
class RecentPage:
    messages: list[Message]
    next_token: str | None
    since: datetime  # the start of the window actually used (``start_time`` or its default)


def encode_position(created: datetime, message_id: str) -> str:
    raw = json.dumps({"t": created.isoformat(), "m": message_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_position(token: str, name: str = "continue_from") -> tuple[datetime, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        stamp = datetime.fromisoformat(data["t"])
        message_id = data["m"]
        if stamp.tzinfo is None or not isinstance(message_id, str) or "\x00" in message_id:
            raise ValueError("not ours")
        stamp = stamp.astimezone(UTC)  # tokens are not signed: an offset may overflow
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            "query", name, "continue_from is not a token this server issued", value=token
        ) from None
    return stamp, message_id


def _checked(pieces: Iterator[bytes], message_id: str) -> Iterator[bytes]:
    """The first piece read now, so bytes that are gone answer 410 before any header is sent."""
    try:
        first = next(pieces)
    except StopIteration:
        return iter(())
    except PayloadMissing:
        raise Gone(message_id=message_id) from None
    return itertools.chain((first,), pieces)


class ReceivingService:
    def __init__(self, settings: Settings, db: Database, payloads: PayloadStore, clock: Clock) -> None:
        self._settings = settings
        self._db = db
        self._payloads = payloads
        self._clock = clock
        self._deep_counts: dict[str, tuple[int, float]] = {}  # mailbox → (count, monotonic time)

    def inbox(
        self,
        principal: MailboxPrincipal,
        *,
        limit: int,
        continue_from: str | None = None,
        after_message_id: str | None = None,
        workflow_filter: WorkflowFilter | None = None,
        with_count: bool = False,
    ) -> InboxPage:
        """One page, oldest first. v2 pages on an opaque token, v1 on the last id seen."""
        with self._db.read() as conn:
            after = None
            if continue_from is not None:
                after = InboxPosition(*decode_position(continue_from))
            elif after_message_id is not None:
                last = messages.get(conn, after_message_id)
                if last is None or last.recipient.mailbox_id != principal.mailbox_id or not last.accepted_at:
                    raise ValidationFailed(
                        "query", "continue_from", "unknown message id", value=after_message_id
                    )
                after = InboxPosition(last.accepted_at, last.message_id)
            rows = messages.inbox_page(
                conn, principal.mailbox_id, after=after, limit=limit + 1, workflow_filter=workflow_filter
            )
            count = self._approx_count(conn, principal.mailbox_id) if with_count else None
        page = rows[:limit]
        token = encode_position(page[-1].accepted_at, page[-1].message_id) if len(rows) > limit else None
        return InboxPage([row.message_id for row in page], token, count)

    def _approx_count(self, conn: Connection, mailbox_id: str) -> int:
        cached = self._deep_counts.get(mailbox_id)
        now = time.monotonic()
        if cached is not None and now - cached[1] < APPROX_COUNT_SECONDS:
            return cached[0]
        count = messages.inbox_count(conn, mailbox_id)
        if count > EXACT_COUNT_UP_TO:
            self._deep_counts[mailbox_id] = (count, now)
        else:
            self._deep_counts.pop(mailbox_id, None)
        return count

    def count(self, principal: MailboxPrincipal) -> int:
        with self._db.read() as conn:
            return messages.inbox_count(conn, principal.mailbox_id)

    def download(self, principal: MailboxPrincipal, message_id: str, chunk_no: int) -> Download:
        with self._db.hot_read() as tx:
            return self._find_download(tx, principal, message_id, chunk_no)

    async def download_async(self, principal: MailboxPrincipal, message_id: str, chunk_no: int) -> Download:
        """``download`` from a coroutine (on the event loop itself on SQLite: a few indexed rows)."""
        return await self._db.read_async(
            partial(self._find_download, principal=principal, message_id=message_id, chunk_no=chunk_no)
        )

    def _find_download(self, tx: Tx, principal: MailboxPrincipal, message_id: str, chunk_no: int) -> Download:
        message = messages.get(tx, message_id)
        if message is None:
            raise MessageNotFound(message_id=message_id)
        if message.recipient.mailbox_id != principal.mailbox_id:
            raise Forbidden(message_id=message_id)
        self._check_downloadable(message)
        if message.is_report:
            return Download(message, chunk_no, None)
        if chunk_no > message.total_chunks:  # before the query: any int can arrive in the path
            raise MessageNotFound(message_id=message_id)
        chunk = messages.get_chunk(tx, message_id, chunk_no)
        if chunk is None:
            return self._composed(tx, message)
        return Download(message, chunk_no, chunk)

    def _composed(self, tx: Tx, message: Message) -> Download:
        """A delivery of a JSON API message: no chunk rows, its payload composed from the
        envelope's body and attachments (``services.envelope_payloads``)."""
        envelope_id = envelopes.envelope_id_of(tx, message.message_id)
        if envelope_id is None:
            raise MessageNotFound(message_id=message.message_id)
        marker = ChunkRow(1, message.file_size, f"{envelope_id}-1", f"envelope:{envelope_id}")
        return Download(message, 1, marker, partial(self._compose, envelope_id))

    def _compose(self, envelope_id: str) -> Iterator[bytes]:
        with self._db.read() as conn:
            head = envelopes.envelope(conn, envelope_id)
            parts = envelopes.attachments_of(conn, [envelope_id])[envelope_id]
        if head is None or any(part.purged for part in parts):
            raise Gone(message_id=envelope_id)
        return envelope_payloads.mesh_payload(self._payloads, envelope_id, head.body, parts)

    def open_chunk(self, found: Download) -> Iterator[bytes]:
        """The stored bytes of a downloadable chunk, streamed; Gone if they were purged."""
        if found.chunk is None:
            return iter(())
        if found.composed is not None:
            try:
                return _checked(found.composed(), found.message.message_id)
            except PayloadMissing:
                raise Gone(message_id=found.message.message_id) from None
        if found.chunk.inline:
            if found.chunk.data is None:  # purged with its message
                raise Gone(message_id=found.message.message_id)
            return iter((found.chunk.data,))
        try:
            return self._payloads.open(found.chunk.payload_key)
        except PayloadMissing:
            raise Gone(message_id=found.message.message_id) from None

    def head(self, principal: MailboxPrincipal, message_id: str) -> Message:
        """Metadata for the recipient (downloadable messages) or the sender (any status)."""
        with self._db.read() as conn:
            message = messages.get(conn, message_id)
        if message is None:
            raise MessageNotFound(message_id=message_id)
        if message.recipient.mailbox_id == principal.mailbox_id:
            self._check_downloadable(message)
            return message
        if message.sender.mailbox_id == principal.mailbox_id:
            return message
        raise MessageNotFound(message_id=message_id)

    def _check_downloadable(self, message: Message) -> None:
        allowed = {MessageStatus.ACCEPTED}
        if self._settings.download_after_ack is AfterAck.ALLOW:
            allowed.add(MessageStatus.ACKNOWLEDGED)
        if message.status not in allowed:
            raise Gone(message_id=message.message_id)

    def acknowledge(self, principal: MailboxPrincipal, message_id: str) -> None:
        """Idempotent: acknowledging twice, or a message in another state, changes nothing."""
        with self._db.hot_write() as tx:
            self.acknowledge_in(tx, principal, message_id)

    def acknowledge_in(self, tx: Tx, principal: MailboxPrincipal, message_id: str) -> str:
        """``acknowledge`` inside a write transaction someone else ends, for a message id as a
        client gave it (checked here); returns the id normalised."""
        message_id = require_message_id(message_id)
        recipient = messages.recipient_for_update(tx, message_id)
        if recipient is None:
            raise MessageNotFound(message_id=message_id)
        if recipient != principal.mailbox_id:
            raise Forbidden(message_id=message_id)
        messages.acknowledge(tx, message_id, self._clock.now())
        return message_id

    def recent(
        self,
        principal: MailboxPrincipal,
        *,
        outbox: bool,
        limit: int,
        start_time: datetime | None,
        continue_from: str | None,
    ) -> RecentPage:
        """Rich inbox or outbox: every message of any status since ``start_time``, newest first."""
        since = start_time or self._clock.now() - RICH_WINDOW
        before = decode_position(continue_from) if continue_from else None
        party = {"sender" if outbox else "recipient": principal.mailbox_id}
        with self._db.read() as conn:
            rows = messages.recent(conn, since=since, before=before, limit=limit + 1, **party)
        page = rows[:limit]
        token = encode_position(page[-1].created_at, page[-1].message_id) if len(rows) > limit else None
        return RecentPage(page, token, since)
