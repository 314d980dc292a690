"""The JSON messaging API's use cases, over the one store the MESH face uses.

A message written here is an envelope with one delivery (a ``messages`` row, which the MESH face
serves unchanged) per recipient and attachments stored once (``services.envelope_payloads``);
a MESH message is read here as a message with one attachment, its payload. What keeps writes
whole: an attachment's bytes are durable before the one transaction that records the
envelope, every delivery and every link commits, so a message is visible on every face at
once or not at all; bytes no committed row uses are removed by the maintenance steps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
from cryptography import x509
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from mailroom.clock import Clock
from mailroom.domain.envelopes import (
    AttachmentInfo,
    Box,
    Compose,
    DeliveryState,
    ListQuery,
    MessageView,
    Page,
    Submitted,
)
from mailroom.domain.links import LinkSigner
from mailroom.domain.mailboxes import normalise_mailbox_id
from mailroom.domain.messages import (
    Message,
    MessageStatus,
    MessageType,
    Metadata,
    StatusDetail,
)
from mailroom.errors import (
    AuthenticationFailed,
    Conflict,
    LinkRefused,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RangeNotSatisfiable,
    ValidationFailed,
)
from mailroom.ids import new_message_id, normalise_message_id
from mailroom.services import envelope_payloads
from mailroom.services.api_tokens import ApiPrincipal
from mailroom.services.mailbox_cache import MailboxCache
from mailroom.services.message_views import Opener, ViewBuilder
from mailroom.services.receipts import ReceiptFacts, ReceiptSigner, ReceivedFile, split_entity
from mailroom.services.sending import LimitExceeded, limited, party
from mailroom.settings import Settings
from mailroom.storage.db import Database
from mailroom.storage.hot import Tx
from mailroom.storage.payloads import PayloadMissing, PayloadStore, chunk_key
from mailroom.storage.repos import envelopes, messages, server_keys
from mailroom.storage.repos.envelopes import AttachmentRow, EnvelopeRow

LINK_KEY = "link-signing"
T = TypeVar("T")


@dataclass(frozen=True)
class Link:
    """Where one attachment (or a receipt) can be fetched without the token, for a while."""

    name: str
    token: str  # Mailroom-signed: the face serves it at ``/files/{token}``
    url: str | None  # a presigned URL of the bucket (S3), offered instead when present


@dataclass(frozen=True)
class RecipientReceipt:
    """One recipient's receipt for a message sent to several."""

    recipient_id: str
    link: Link


@dataclass(frozen=True)
class FileBytes:
    """What a link opens: a whole file or a range of it (``end`` exclusive)."""

    name: str
    content_type: str
    size: int
    start: int
    end: int
    pieces: Iterator[bytes]


def _message_id(raw: str) -> str:
    found = normalise_message_id(raw.strip().strip("<>"))
    if found is None:
        raise NotFound("No such message", message_id=raw[:100])
    return found


def _request_digest(recipients: list[str], compose: Compose, parts: list[AttachmentRow]) -> str:
    """What an idempotency key was first used for: a retry must ask for the same message."""
    described = {
        "to": recipients,
        "subject": compose.subject,
        "body": hashlib.sha256(compose.body.encode()).hexdigest(),
        "attachments": [[p.name, p.size, p.sha256] for p in parts],
        "local_id": compose.local_id,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


class MessagingService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        payloads: PayloadStore,
        clock: Clock,
        mailbox_cache: MailboxCache,
        receipts: ReceiptSigner,
    ) -> None:
        self._settings = settings
        self._db = db
        self._payloads = payloads
        self._clock = clock
        self._mailboxes = mailbox_cache
        self._receipts = receipts
        self._signer: LinkSigner | None = None
        self._views = ViewBuilder(settings)

    # -- writing ----------------------------------------------------------------------------
    def stage_attachment(
        self, principal: ApiPrincipal, name: str, content_type: str, data: Iterable[bytes]
    ) -> AttachmentInfo:
        """Store one attachment's bytes (blocking; call it from a thread): durable when this
        returns, usable by ``submit`` of the same mailbox; removed after
        ``Settings.staged_attachment_retention`` if no message uses it."""
        _writer(principal)
        _check_name(name)
        if len(content_type) > 200 or not content_type.isprintable():
            raise ValidationFailed("header", "Content-Type", "not a content type this server keeps")
        now = self._clock.now()
        attachment_id = new_message_id(now)
        key, size, sha256, inline = self._store(attachment_id, data)
        row = AttachmentRow(
            attachment_id=attachment_id,
            owner_id=principal.mailbox_id,
            name=name,
            content_type=content_type or envelope_payloads.DEFAULT_TYPE,
            size=size,
            sha256=sha256,
            payload_key=key,
            data=inline,
            created_at=now,
            purged=False,
        )
        try:
            with self._db.write() as conn:
                envelopes.insert_attachment(conn, row)
        except BaseException:
            if key:
                self._payloads.delete(key)
            raise
        return AttachmentInfo(attachment_id, row.name, row.content_type, size, sha256)

    def _store(self, attachment_id: str, data: Iterable[bytes]) -> tuple[str, int, str, bytes | None]:
        """(payload key or "", size, sha256, bytes kept in the row): small attachments go in
        their row (``Settings.inline_payload_bytes``), the rest to the payload store."""
        limit = min(self._settings.max_message_bytes, self._settings.max_chunk_bytes)
        pieces = iter(data)
        held: list[bytes] = []
        held_size = 0
        inline_up_to = self._settings.inline_payload_bytes
        for piece in pieces:
            held.append(bytes(piece))
            held_size += len(piece)
            if held_size > inline_up_to:
                break
        else:
            body = b"".join(held)
            return "", len(body), hashlib.sha256(body).hexdigest(), body
        key = chunk_key(attachment_id, 1)
        try:
            stored = self._payloads.put(key, limited(_chain(held, pieces), limit))
        except LimitExceeded:
            raise PayloadTooLarge(f"An attachment is larger than {limit} bytes") from None
        return key, stored.size, stored.sha256, None

    async def replay(
        self, principal: ApiPrincipal, idempotency_key: str, recipients: list[str], subject: str
    ) -> Submitted | None:
        """The earlier submit with this key, if there is one (checked before a body is read).

        What a retry says before its body must be what the first submit said: other recipients
        or another subject is ``Conflict``, as the submit's own digest check would say. Other
        attachment bytes cannot be told apart without reading them, which a retry is spared."""

        def work(conn: Connection) -> tuple[tuple[str, str, list[str]], str, set[str]] | None:
            found = envelopes.by_idempotency_key(conn, principal.mailbox_id, idempotency_key)
            if found is None:
                return None
            earlier = envelopes.envelope(conn, found[0])
            delivered = {m.recipient.mailbox_id for m in map(partial(messages.get, conn), found[2]) if m}
            return found, earlier.subject if earlier else "", delivered

        answer = await self._in_thread(work)
        if answer is None:
            return None
        found, earlier_subject, delivered = answer
        if earlier_subject != subject or delivered != self._known(recipients):
            raise Conflict("This Idempotency-Key was used for a different message")
        return Submitted(found[0], found[2], [], replayed=True)

    def _known(self, wanted: list[str]) -> set[str]:
        """The mailbox ids of ``wanted`` that a submit would deliver to."""
        try:
            found, _skipped = self._recipients(wanted)
        except ValidationFailed:
            return set()
        return {mailbox.mailbox_id for mailbox in found}

    async def submit(self, principal: ApiPrincipal, compose: Compose) -> Submitted:
        """Write one message: its envelope, a delivery per recipient and its attachment links,
        in one transaction (all visible or none). Unknown recipients are skipped and named;
        with none left, ``ValidationFailed``."""
        sender, recipients, skipped = self._check_parties(principal, compose)
        parts = await self._attachments(principal, compose.attachment_ids)
        if not compose.body and not parts:
            raise ValidationFailed("body", "body", "A message needs a body or at least one attachment")
        digest = _request_digest([r.mailbox_id for r in recipients], compose, parts)
        now = self._clock.now()
        envelope = EnvelopeRow(
            envelope_id=new_message_id(now),
            sender_id=principal.mailbox_id,
            subject=compose.subject,
            body=compose.body,
            local_id=compose.local_id,
            idempotency_key=compose.idempotency_key,
            request_digest=digest,
            face=compose.face.value,
            created_at=now,
            sender_deleted_at=None,
        )
        rendering = envelope_payloads.rendering(envelope.envelope_id, compose.body, parts)
        deliveries = [
            self._delivery(envelope, party(sender), party(recipient), compose, rendering, index)
            for index, recipient in enumerate(recipients)
        ]
        work = partial(_record_envelope, envelope=envelope, parts=parts, deliveries=deliveries)
        try:
            replayed = await self._db.write_async(work)
        except IntegrityError:
            if compose.idempotency_key is None:
                raise
            replayed = await self._db.read_async(
                partial(
                    _replay_in, sender_id=principal.mailbox_id, key=compose.idempotency_key, digest=digest
                )
            )
            if replayed is None:
                raise
        if replayed is not None:
            return replayed
        return Submitted(envelope.envelope_id, [d.message_id for d in deliveries], skipped, replayed=False)

    def check_submit(self, principal: ApiPrincipal, compose: Compose) -> None:
        """Refuse now what ``submit`` would refuse for its sender, recipients or limits, so a
        face can check before it stores a body's attachments (a refused submit then leaves no
        staged attachment behind). ``submit`` checks again."""
        self._check_parties(principal, compose)

    def _check_parties(self, principal: ApiPrincipal, compose: Compose) -> tuple[Any, list[Any], list[str]]:
        """(sender, recipients, skipped recipient names), or the error ``submit`` refuses with."""
        _writer(principal)
        self._check_compose(compose)
        sender = self._mailboxes.get(principal.mailbox_id)
        if sender is None or not sender.active:
            raise AuthenticationFailed(reason=f"mailbox {principal.mailbox_id} is gone or disabled")
        recipients, skipped = self._recipients(compose.recipients)
        return sender, recipients, skipped

    def _check_compose(self, compose: Compose) -> None:
        settings = self._settings
        if not compose.recipients:
            raise ValidationFailed("body", "recipients", "At least one recipient is needed")
        if len(compose.recipients) > settings.max_recipients:
            raise ValidationFailed("body", "recipients", f"At most {settings.max_recipients} recipients")
        if len(compose.attachment_ids) > settings.max_attachments:
            raise ValidationFailed("body", "attachmentIds", f"At most {settings.max_attachments} attachments")
        if len(compose.body.encode("utf-8", "surrogatepass")) > settings.max_body_bytes:
            raise PayloadTooLarge(f"The body is larger than {settings.max_body_bytes} bytes")
        if compose.idempotency_key is not None and not 0 < len(compose.idempotency_key) <= 200:
            raise ValidationFailed("header", "Idempotency-Key", "must be 1 to 200 characters")

    def _recipients(self, wanted: list[str]) -> tuple[list[Any], list[str]]:
        found, skipped, seen = [], [], set()
        for raw in wanted:
            mailbox_id = raw.strip().upper()
            mailbox = self._mailboxes.get(mailbox_id) if mailbox_id and "\x00" not in mailbox_id else None
            if mailbox is None or not mailbox.active:
                skipped.append(raw)
            elif mailbox_id not in seen:
                seen.add(mailbox_id)
                found.append(mailbox)
        if not found:
            names = ", ".join(skipped[:10])
            raise ValidationFailed("body", "recipients", f"No recipient names a known mailbox: {names}")
        return found, skipped

    async def _attachments(self, principal: ApiPrincipal, attachment_ids: list[str]) -> list[AttachmentRow]:
        if not attachment_ids:
            return []

        def read(conn: Connection) -> dict[str, AttachmentRow]:
            return envelopes.staged(conn, principal.mailbox_id, attachment_ids)

        found = await anyio.to_thread.run_sync(self._read, read)
        missing = [a for a in attachment_ids if a not in found]
        if missing:
            raise ValidationFailed(
                "body", "attachmentIds", f"Unknown attachment id: {missing[0][:100]}", value=missing[0][:100]
            )
        return [found[a] for a in attachment_ids]

    def _read(self, work: Callable[[Connection], T]) -> T:
        with self._db.read() as conn:
            return work(conn)

    def _delivery(
        self,
        envelope: EnvelopeRow,
        sender: Any,
        recipient: Any,
        compose: Compose,
        rendering: envelope_payloads.MeshRendering,
        index: int,
    ) -> Message:
        now = envelope.created_at
        message_id = envelope.envelope_id if index == 0 else new_message_id(now)
        return Message(
            message_id=message_id,
            message_type=MessageType.DATA,
            sender=sender,
            recipient=recipient,
            meta=Metadata(
                workflow_id=compose.workflow_id,
                subject=compose.subject,
                local_id=compose.local_id,
                file_name=rendering.file_name,
                content_type=rendering.content_type,
            ),
            total_chunks=1,
            file_size=rendering.size,
            status=MessageStatus.ACCEPTED,
            detail=StatusDetail(),
            created_at=now,
            status_at=now,
            accepted_at=now,
            acknowledged_at=None,
            inbox_expires_at=now + self._settings.inbox_retention,
        )

    # -- reading ------------------------------------------------------------------------------
    async def inbox(self, principal: ApiPrincipal, query: ListQuery) -> Page:
        def work(conn: Connection) -> Page:
            ids, total = envelopes.inbox_page(conn, principal.mailbox_id, query)
            return Page(self._views.received(conn, ids), total)

        return await self._in_thread(work)

    async def outbox(self, principal: ApiPrincipal, box: Box, query: ListQuery) -> Page:
        before = self._clock.now() - self._settings.receipt_timeout

        def work(conn: Connection) -> Page:
            ids, total = envelopes.outbox_page(conn, principal.mailbox_id, box, query, before)
            return Page(self._views.sent(conn, principal.mailbox_id, ids), total)

        return await self._in_thread(work)

    async def _in_thread(self, work: Callable[[Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self._read, work)

    async def _writing(self, work: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self._db.write() as conn:
                return work(conn)

        return await anyio.to_thread.run_sync(run)

    def _mine(self, tx: Tx | Connection, principal: ApiPrincipal, message_id: str) -> Message:
        """A message in the caller's inbox; NotFound for anyone else's (never 403: that would say
        it exists)."""
        found = messages.get(tx, message_id)
        if (
            found is None
            or found.recipient.mailbox_id != principal.mailbox_id
            or found.status is not MessageStatus.ACCEPTED
        ):
            raise NotFound("No such message in this inbox", message_id=message_id)
        return found

    async def received(self, principal: ApiPrincipal, message_id: str, *, mark_read: bool) -> MessageView:
        """One received message; ``mark_read`` (not for a read-only token) sets its read flag
        and records its retrieval, in one transaction with the read."""
        wanted = _message_id(message_id)
        marking = mark_read and not principal.read_only

        def work(tx: Tx) -> MessageView:
            message = self._mine(tx, principal, wanted)
            if marking:
                envelopes.retrieved_in(tx, wanted, self._clock.now(), read=True)
            return self._views.received_in(tx, message)

        return await (self._db.write_async(work) if marking else self._db.read_async(work))

    async def _retrieve(self, principal: ApiPrincipal, message_id: str) -> None:
        """Record that the recipient retrieved a message (its attachments or receipt)."""
        if principal.read_only:
            return

        def work(tx: Tx) -> None:
            self._mine(tx, principal, message_id)
            envelopes.retrieved_in(tx, message_id, self._clock.now(), read=False)

        await self._db.write_async(work)

    async def sent(self, principal: ApiPrincipal, message_id: str) -> MessageView:
        wanted = _message_id(message_id)

        def work(conn: Connection) -> MessageView:
            views = self._views.sent(conn, principal.mailbox_id, [wanted])
            if not views:
                raise NotFound("No such message in this outbox", message_id=wanted)
            return views[0]

        return await self._in_thread(work)

    async def set_read(self, principal: ApiPrincipal, message_id: str, read: bool) -> None:
        _writer(principal)
        wanted = _message_id(message_id)

        def work(tx: Tx) -> None:
            self._mine(tx, principal, wanted)
            if read:
                envelopes.retrieved_in(tx, wanted, self._clock.now(), read=True)
            else:
                envelopes.unread_in(tx, wanted)

        await self._db.write_async(work)

    async def delete_received(self, principal: ApiPrincipal, message_ids: list[str]) -> list[str]:
        """Acknowledge on MESH (idempotent for the caller's own); the ids deleted. Ids that are
        not in the caller's inbox are left out (a single one: NotFound, from the face)."""
        _writer(principal)
        if len(message_ids) > 1000:
            raise ValidationFailed("body", "messageIdentifiers", "At most 1000 ids at once")
        wanted = [m for m in (normalise_message_id(r.strip().strip("<>")) for r in message_ids) if m]

        def work(tx: Tx) -> list[str]:
            now = self._clock.now()
            deleted = []
            for message_id in dict.fromkeys(wanted):
                if messages.recipient_for_update(tx, message_id) != principal.mailbox_id:
                    continue
                messages.acknowledge(tx, message_id, now)  # delivered from then: acknowledged_at
                deleted.append(message_id)
            return deleted

        return list(await self._db.write_async(work))

    async def delete_sent(self, principal: ApiPrincipal, message_id: str) -> str:
        _writer(principal)
        wanted = _message_id(message_id)

        def work(conn: Connection) -> str:
            if not self._views.sent(conn, principal.mailbox_id, [wanted]):
                raise NotFound("No such message in this outbox", message_id=wanted)
            envelopes.hide_sent(conn, wanted, self._clock.now())
            return wanted

        return str(await self._writing(work))

    # -- files --------------------------------------------------------------------------------
    def receipt_certificate(self) -> x509.Certificate:
        """The certificate receipts are signed with (what a sender verifies them against)."""
        return self._receipts.certificate()

    def _link_signer(self) -> LinkSigner:
        if self._signer is None:
            with self._db.write() as conn:
                key = server_keys.get_or_create(conn, LINK_KEY, lambda: os_random(32), self._clock.now())
            self._signer = LinkSigner(key)
        return self._signer

    async def attachment_links(
        self, principal: ApiPrincipal, message_id: str, *, incoming: bool
    ) -> list[Link]:
        wanted = _message_id(message_id)
        view = await (
            self.received(principal, wanted, mark_read=False) if incoming else self.sent(principal, wanted)
        )
        if incoming:
            await self._retrieve(principal, wanted)
        signer = await anyio.to_thread.run_sync(self._link_signer)
        expires = self._clock.now() + self._settings.link_lifetime
        holder = view.message_id
        links = []
        for item in view.attachments:
            claims = {"k": "a", "m": holder, "a": item.attachment_id, "o": principal.mailbox_id}
            token = signer.sign(claims, expires)
            url = await anyio.to_thread.run_sync(self._presigned, item)
            links.append(Link(item.name, token, url))
        return links

    def _presigned(self, item: AttachmentInfo) -> str | None:
        key = self._views.stored_key(self._db, item.attachment_id)
        if not key:
            return None
        seconds = int(self._settings.link_lifetime.total_seconds())
        return self._payloads.presign_get(
            key, expires_in=seconds, file_name=item.name, content_type=item.content_type
        )

    async def receipt_link(self, principal: ApiPrincipal, message_id: str, *, incoming: bool) -> Link:
        """A received message's receipt, or a sent one's first (in recipient order) of those
        its recipients retrieved (``sent_receipts``)."""
        wanted = _message_id(message_id)
        if not incoming:
            return (await self.sent_receipts(principal, wanted))[0].link
        view = await self.received(principal, wanted, mark_read=False)
        await self._retrieve(principal, wanted)
        return await self._receipt(principal, view.message_id)

    async def sent_receipts(
        self, principal: ApiPrincipal, message_id: str, *, recipient: str | None = None
    ) -> list[RecipientReceipt]:
        """A link to the receipt of each recipient who has retrieved a sent message, in recipient
        order, or only ``recipient``'s (a mailbox id, any case). ``NotFound`` if no recipient
        has retrieved it yet, or ``recipient`` is not one of its recipients or has not."""
        wanted = _message_id(message_id)
        view = await self.sent(principal, wanted)
        deliveries = view.deliveries
        if recipient is not None:
            chosen = normalise_mailbox_id(recipient) if len(recipient) <= 100 else None
            deliveries = [d for d in deliveries if d.recipient_id == chosen]
            if not deliveries:
                raise NotFound(f"{recipient[:100]} is not a recipient of this message", message_id=wanted)
        done = [d for d in deliveries if d.state in (DeliveryState.DELIVERED, DeliveryState.ACKNOWLEDGED)]
        if not done:
            who = "no recipient has" if recipient is None else f"{deliveries[0].recipient_id} has not"
            raise NotFound(f"No receipt yet: {who} retrieved this message", message_id=wanted)
        return [RecipientReceipt(d.recipient_id, await self._receipt(principal, d.message_id)) for d in done]

    async def _receipt(self, principal: ApiPrincipal, delivery_id: str) -> Link:
        await anyio.to_thread.run_sync(self._ensure_receipt, delivery_id)
        signer = await anyio.to_thread.run_sync(self._link_signer)
        expires = self._clock.now() + self._settings.link_lifetime
        token = signer.sign({"k": "r", "m": delivery_id, "o": principal.mailbox_id}, expires)
        return Link(f"{delivery_id}.mdn", token, None)

    def _ensure_receipt(self, delivery_id: str) -> None:
        """Sign the delivery's receipt the first time it is asked for, and keep it."""
        with self._db.read() as conn:
            if envelopes.receipt(conn, delivery_id) is not None:
                return
            view = self._views.received(conn, [delivery_id], any_status=True)[0]
            delivery = envelopes.delivery(conn, delivery_id)
            files = [self._received_file(conn, view.message_id, item) for item in view.attachments]
        delivered = (delivery.delivered_at if delivery else None) or view.deliveries[0].status_at
        body = hashlib.sha256(view.body.encode()).hexdigest() if view.body else None
        facts = ReceiptFacts(
            message_id=view.message_id,
            sender_id=view.sender_id,
            recipient_id=view.recipient_ids[0],
            subject=view.subject,
            delivered_at=delivered,
            body_sha256=body,
            files=files,
        )
        document = self._receipts.build_receipt(facts)
        with self._db.write() as conn:
            envelopes.store_receipt(conn, delivery_id, document)

    def _received_file(self, conn: Connection, holder: str, item: AttachmentInfo) -> ReceivedFile:
        """An attachment's size and SHA-256; a MESH payload's digest is computed by reading it."""
        if item.sha256:
            return ReceivedFile(item.name, item.size, item.sha256)
        claims = {"m": holder, "a": item.attachment_id, "o": ""}
        message = messages.get(conn, holder)
        claims["o"] = message.recipient.mailbox_id if message else ""
        _name, _type, size, opener = self._views.attachment_opener(conn, self._payloads, claims)
        digest = hashlib.sha256()
        for piece in opener(0, size):
            digest.update(piece)
        return ReceivedFile(item.name, size, digest.hexdigest())

    def open_link(self, token: str, byte_range: tuple[int | None, int | None] | None = None) -> FileBytes:
        """What a signed link names (blocking reads; iterate in a thread). ``byte_range`` is a
        ``Range: bytes=a-b`` header's (a, b), b inclusive; ``(None, n)`` the last n bytes;
        ``RangeNotSatisfiable`` past the end. ``LinkRefused`` for an expired or altered link."""
        claims = self._link_signer().verify(token, self._clock.now())
        opener: Opener
        with self._db.read() as conn:
            if claims.get("k") == "r":
                stored = envelopes.receipt(conn, claims.get("m", ""))
                if stored is None:
                    raise LinkRefused()
                content_type, document = split_entity(stored)
                name, size = f"{claims['m']}.mdn", len(document)
                opener = _bytes_opener(document)
            else:
                name, content_type, size, opener = self._views.attachment_opener(conn, self._payloads, claims)
        start, end = _range(byte_range, size)
        try:
            pieces = opener(start, end)
        except PayloadMissing:
            raise LinkRefused("The file of this link is no longer kept") from None
        return FileBytes(name, content_type, size, start, end, pieces)


def _bytes_opener(document: bytes) -> Opener:
    return lambda start, end: iter((document[start:end],))


def _range(byte_range: tuple[int | None, int | None] | None, size: int) -> tuple[int, int]:
    if byte_range is None:
        return 0, size
    first, last = byte_range
    if first is None:
        if last is None or last <= 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - last), size
    if first >= size:
        raise RangeNotSatisfiable(size)
    end = size if last is None else min(size, last + 1)
    if end <= first:
        raise RangeNotSatisfiable(size)
    return first, end


def _check_name(name: str) -> None:
    """An attachment's name is metadata only (never a path): it must be printable and fit."""
    if not name or len(name) > 300 or not name.isprintable():
        raise ValidationFailed(
            "header", "name", "An attachment name must be 1 to 300 printable characters", value=name[:100]
        )


def _writer(principal: ApiPrincipal) -> None:
    if principal.read_only:
        raise PermissionDenied("This token is read-only")


def _chain(held: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from held
    yield from rest


def os_random(size: int) -> bytes:
    import secrets

    return secrets.token_bytes(size)


def _record_envelope(
    tx: Tx, envelope: EnvelopeRow, parts: list[AttachmentRow], deliveries: list[Message]
) -> Submitted | None:
    """The one transaction of a submit; an earlier submit's answer if its key was used."""
    if envelope.idempotency_key is not None:
        earlier = _replay_in(tx, envelope.sender_id, envelope.idempotency_key, envelope.request_digest)
        if earlier is not None:
            return earlier
    envelopes.insert_envelope(tx, envelope)
    envelopes.link_attachments(tx, envelope.envelope_id, [p.attachment_id for p in parts])
    for delivery in deliveries:
        messages.insert_message(tx, delivery)
        messages.add_event(tx, delivery.message_id, delivery.status, delivery.created_at)
        envelopes.insert_delivery(tx, delivery.message_id, envelope.envelope_id)
    return None


def _replay_in(tx: Tx | Connection, sender_id: str, key: str, digest: str) -> Submitted | None:
    found = envelopes.by_idempotency_key(tx, sender_id, key)
    if found is None:
        return None
    envelope_id, first_digest, ids = found
    if first_digest != digest:
        raise Conflict("This Idempotency-Key was used for a different message")
    return Submitted(envelope_id, ids, [], replayed=True)
