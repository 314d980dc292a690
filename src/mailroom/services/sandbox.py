"""mesh-sandbox's test-control operations (spec §5.14). Only reachable when ``sandbox`` is on."""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.clock import Clock
from mailroom.domain.messages import Message, MessageStatus, StatusDetail
from mailroom.domain.reports import ReportSpec
from mailroom.errors import MessageNotFound, NotFound, ValidationFailed
from mailroom.services.maintenance import report_message
from mailroom.services.sending import party
from mailroom.storage.db import Database
from mailroom.storage.payloads import PayloadStore
from mailroom.storage.repos import mailboxes, messages


@dataclass(frozen=True)
class ReportRequest:
    mailbox_id: str
    code: str
    description: str
    workflow_id: str
    subject: str = ""
    local_id: str = ""
    status: str = "undeliverable"
    file_name: str = ""
    linked_message_id: str = ""


class SandboxService:
    def __init__(self, db: Database, payloads: PayloadStore, clock: Clock) -> None:
        self._db = db
        self._payloads = payloads
        self._clock = clock

    def reset(self, mailbox_id: str | None = None) -> None:
        """Drop every message (or every message a mailbox sent or received) and its payloads."""
        with self._db.write() as conn:
            if mailbox_id is not None and mailboxes.get(conn, mailbox_id) is None:
                raise NotFound("mailbox does not exist")
            removed = messages.delete_where_party(conn, mailbox_id)
        for message_id in removed:
            self._payloads.delete_message(message_id)

    def inject_report(self, request: ReportRequest) -> str:
        try:
            status = MessageStatus(request.status)
        except ValueError:
            raise ValidationFailed(
                "body", "status", "status must be undeliverable or error", value=request.status
            ) from None
        if status not in (MessageStatus.UNDELIVERABLE, MessageStatus.ERROR):
            raise ValidationFailed(
                "body", "status", "status must be undeliverable or error", value=request.status
            )
        now = self._clock.now()
        detail = StatusDetail(
            event="TRANSFER",
            code=request.code,
            description=request.description,
            linked_message_id=request.linked_message_id,
        )
        spec = ReportSpec(request.mailbox_id, request.workflow_id, request.local_id, request.subject, detail)
        with self._db.write() as conn:
            recipient = mailboxes.get(conn, request.mailbox_id)
            if recipient is None:
                raise NotFound("mailbox does not exist")
            report = report_message(
                spec, party(recipient), now, MessageStatus.ACCEPTED, file_name=request.file_name
            )
            messages.insert_message(conn, report)
            messages.add_event(conn, report.message_id, MessageStatus.ACCEPTED, now)
            messages.add_event(conn, report.message_id, status, now, detail)
        return report.message_id

    def add_event(self, message_id: str, status: str, detail: StatusDetail) -> None:
        try:
            new_status = MessageStatus(status)
        except ValueError:
            raise ValidationFailed("body", "status", "unknown status", value=status) from None
        now = self._clock.now()
        with self._db.write() as conn:
            message = messages.get(conn, message_id, for_update=True)
            if message is None:
                raise MessageNotFound(message_id=message_id)
            accepted_at = message.accepted_at
            if new_status is MessageStatus.ACCEPTED and accepted_at is None:
                accepted_at = now
            messages.change_status(conn, message_id, new_status, now, detail=detail, accepted_at=accepted_at)

    def message(self, message_id: str) -> Message:
        with self._db.read() as conn:
            message = messages.get(conn, message_id)
        if message is None:
            raise MessageNotFound(message_id=message_id)
        return message
