"""Tracking: a sender asks what became of a message it sent."""

from __future__ import annotations

from mailroom.domain.messages import Message
from mailroom.errors import Ambiguous, MessageNotFound, NotFound
from mailroom.services.authentication import MailboxPrincipal
from mailroom.storage.db import Database
from mailroom.storage.repos import messages


class TrackingService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def by_message_id(self, principal: MailboxPrincipal, message_id: str) -> Message:
        """Only the sender may track; anything else is 404, as in Spine."""
        with self._db.read() as conn:
            message = messages.get(conn, message_id)
        if message is None or message.sender.mailbox_id != principal.mailbox_id:
            raise MessageNotFound(message_id=message_id)
        return message

    def by_local_id(self, principal: MailboxPrincipal, local_id: str) -> Message:
        with self._db.read() as conn:
            found = messages.by_local_id(conn, principal.mailbox_id, local_id)
        if not found:
            raise NotFound("Message does not exist", event="TRACK", code="20")
        if len(found) > 1:
            raise Ambiguous("Multiple messages found for this local id")
        return found[0]
