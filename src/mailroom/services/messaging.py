"""The JSON messaging API's use cases, over the one store the MESH face uses.

INTERFACE (being filled in): the JSON faces (``web/messaging/``) depend on exactly these names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mailroom.domain.envelopes import AttachmentInfo, Box, Compose, ListQuery, MessageView, Page, Submitted
from mailroom.services.api_tokens import ApiPrincipal


@dataclass(frozen=True)
class Link:
    """Where one attachment (or a receipt) can be fetched without the token, for a while."""

    name: str
    token: str  # Mailroom-signed: the face serves it at ``/files/{token}``
    url: str | None  # a presigned URL of the bucket (S3), offered instead when present


@dataclass(frozen=True)
class FileBytes:
    """What a link opens: a whole file or a range of it (``end`` exclusive)."""

    name: str
    content_type: str
    size: int
    start: int
    end: int
    pieces: Iterator[bytes]


class MessagingService:
    # -- writing ----------------------------------------------------------------------------
    def stage_attachment(
        self, principal: ApiPrincipal, name: str, content_type: str, data: Iterable[bytes]
    ) -> AttachmentInfo:
        """Store one attachment's bytes (blocking; call it from a thread): durable when this
        returns, usable by ``submit`` of the same mailbox; removed after
        ``Settings.staged_attachment_retention`` if no message uses it."""
        raise NotImplementedError

    def replay(self, principal: ApiPrincipal, idempotency_key: str) -> Submitted | None:
        """The earlier submit with this key, if there is one (checked before a body is read)."""
        raise NotImplementedError

    async def submit(self, principal: ApiPrincipal, compose: Compose) -> Submitted:
        """Write one message: its envelope, a delivery per recipient and its attachment links,
        in one transaction (all visible or none). Unknown recipients are skipped and named;
        with none left, ``ValidationFailed``."""
        raise NotImplementedError

    # -- reading ------------------------------------------------------------------------------
    async def inbox(self, principal: ApiPrincipal, query: ListQuery) -> Page:
        raise NotImplementedError

    async def outbox(self, principal: ApiPrincipal, box: Box, query: ListQuery) -> Page:
        raise NotImplementedError

    async def received(self, principal: ApiPrincipal, message_id: str, *, mark_read: bool) -> MessageView:
        raise NotImplementedError

    async def sent(self, principal: ApiPrincipal, message_id: str) -> MessageView:
        raise NotImplementedError

    async def set_read(self, principal: ApiPrincipal, message_id: str, read: bool) -> None:
        raise NotImplementedError

    async def delete_received(self, principal: ApiPrincipal, message_ids: list[str]) -> list[str]:
        """Acknowledge on MESH (idempotent); returns the ids deleted."""
        raise NotImplementedError

    async def delete_sent(self, principal: ApiPrincipal, message_id: str) -> str:
        raise NotImplementedError

    # -- files --------------------------------------------------------------------------------
    async def attachment_links(
        self, principal: ApiPrincipal, message_id: str, *, incoming: bool
    ) -> list[Link]:
        raise NotImplementedError

    async def receipt_link(self, principal: ApiPrincipal, message_id: str, *, incoming: bool) -> Link:
        raise NotImplementedError

    def open_link(self, token: str, byte_range: tuple[int | None, int | None] | None = None) -> FileBytes:
        """What a signed link names (blocking reads; iterate in a thread). ``byte_range`` is a
        ``Range: bytes=a-b`` header's (a, b), b inclusive; ``(None, n)`` the last n bytes;
        ``RangeNotSatisfiable`` past the end. ``LinkRefused`` for an expired or altered link."""
        raise NotImplementedError
