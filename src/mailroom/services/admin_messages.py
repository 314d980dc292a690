"""Messages and workflows in the administration API: searching, details with the status
history, re-injecting an expired message, deleting one; listing and changing workflow
registrations. Payload bytes are never shown: only their sizes and checksums."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailroom.clock import Clock
from mailroom.domain.admin import ArgType, Privilege
from mailroom.domain.mailboxes import normalise_mailbox_id
from mailroom.domain.messages import MessageStatus, StatusDetail
from mailroom.errors import Conflict, Gone, MessageNotFound, ValidationFailed
from mailroom.ids import normalise_message_id
from mailroom.services.admin_api import Arg, Call, Function
from mailroom.services.mailboxes import MailboxService
from mailroom.settings import Settings
from mailroom.storage.db import Database
from mailroom.storage.payloads import PayloadStore
from mailroom.storage.repos import mailboxes as mailbox_repo
from mailroom.storage.repos import message_admin as repo
from mailroom.storage.repos.message_admin import Listed, MessageQuery

log = logging.getLogger(__name__)

READ, ADMIN = Privilege.READ, Privilege.ADMIN
S, N, J = ArgType.STRING, ArgType.NUMBER, ArgType.JSON


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 time with its zone (``2026-12-07T10:00:00Z``), or None."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(
            "body", name, "an ISO 8601 time, e.g. 2026-12-07T10:00:00Z", value=value[:40]
        ) from None
    if parsed.tzinfo is None:
        raise ValidationFailed("body", name, "give the time zone (Z or +hh:mm)", value=value[:40])
    return parsed


def message_id_arg(call: Call) -> str:
    raw = call.args["messageId"]
    message_id = normalise_message_id(raw)
    if message_id is None:
        raise MessageNotFound(f"message {raw[:100]} does not exist")
    return message_id


def listed_record(listed: Listed) -> dict[str, Any]:
    message = listed.message
    return {
        "messageId": message.message_id,
        "messageType": message.message_type.value,
        "status": message.status.value,
        "sender": message.sender.mailbox_id,
        "recipient": message.recipient.mailbox_id,
        "workflowId": message.meta.workflow_id,
        "localId": message.meta.local_id,
        "subject": message.meta.subject,
        "fileName": message.meta.file_name,
        "fileSize": message.file_size,
        "totalChunks": message.total_chunks,
        "created": iso(message.created_at),
        "statusAt": iso(message.status_at),
        "accepted": iso(message.accepted_at),
        "acknowledged": iso(message.acknowledged_at),
        "inboxExpires": iso(message.inbox_expires_at),
        "payloadPurged": listed.payload_purged,
    }


def detail_record(detail: StatusDetail) -> dict[str, str]:
    return {
        "event": detail.event,
        "code": detail.code,
        "description": detail.description,
        "linkedMessageId": detail.linked_message_id,
    }


@dataclass(frozen=True)
class MessageAdmin:
    settings: Settings
    db: Database
    payloads: PayloadStore
    clock: Clock

    def search(self, query: MessageQuery, *, offset: int, limit: int) -> tuple[int, list[Listed]]:
        with self.db.read() as conn:
            return repo.search(conn, query, offset=offset, limit=limit)

    def details(self, message_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            listed = repo.get(conn, message_id)
            if listed is None:
                raise MessageNotFound(f"message {message_id} does not exist")
            events = repo.events(conn, message_id)
            chunk_rows = repo.chunk_listing(conn, message_id)
        message = listed.message
        meta = message.meta
        return {
            **listed_record(listed),
            "senderName": message.sender.name,
            "recipientName": message.recipient.name,
            "partnerId": meta.partner_id,
            "contentType": meta.content_type,
            "contentEncoding": meta.content_encoding,
            "checksum": meta.checksum,
            "encrypted": meta.encrypted,
            "compressed": meta.compressed,
            "statusDetail": detail_record(message.detail),
            "history": [
                {"status": event.status, "time": iso(event.at), **detail_record(event.detail)}
                for event in events
            ],
            "chunks": [
                {
                    "chunkNo": chunk.chunk_no,
                    "size": chunk.size,
                    "sha256": chunk.sha256,
                    "inRow": chunk.in_row,
                    "stored": iso(chunk.stored_at),
                }
                for chunk in chunk_rows
            ],
        }

    def reinject(self, message_id: str, by: str) -> Listed:
        """Put an expired (undeliverable) DATA message back in its recipient's inbox with a
        fresh inbox expiry, as a service desk does; its non-delivery report stays sent."""
        now = self.clock.now()
        purge_cutoff = now - self.settings.payload_retention
        detail = StatusDetail(description=f"Reinjected by administrator {by}")
        with self.db.write() as conn:
            listed = repo.get(conn, message_id)
            if listed is None:
                raise MessageNotFound(f"message {message_id} does not exist")
            self._check_reinjectable(conn, listed, purge_cutoff)
            expires = now + self.settings.inbox_retention
            if not repo.reinject(conn, message_id, now, expires, purge_cutoff=purge_cutoff, detail=detail):
                raise Conflict(f"message {message_id} changed meanwhile; look at it again")
            found = repo.get(conn, message_id)
        assert found is not None
        log.info("message %s reinjected into %s by %s", message_id, found.message.recipient.mailbox_id, by)
        return found

    def _check_reinjectable(self, conn: Any, listed: Listed, purge_cutoff: datetime) -> None:
        message = listed.message
        if message.is_report:
            raise Conflict(f"message {message.message_id} is a report: only DATA messages are reinjected")
        if message.status is not MessageStatus.UNDELIVERABLE:
            raise Conflict(
                f"message {message.message_id} is {message.status.value}: only an undeliverable "
                "(expired) message is reinjected"
            )
        if listed.payload_purged or message.status_at <= purge_cutoff:
            raise Gone(f"message {message.message_id}: its payload was purged, so it cannot be delivered")
        recipient = mailbox_repo.get(conn, message.recipient.mailbox_id)
        if recipient is None or not recipient.active:
            state = "does not exist" if recipient is None else "is disabled"
            raise Conflict(
                f"message {message.message_id}: its recipient {message.recipient.mailbox_id} {state}"
            )

    def delete(self, message_id: str) -> bool:
        """Delete a message's rows, then its payloads; refused while it is being uploaded.
        True if the payloads were deleted too (else the orphan scan takes them)."""
        with self.db.write() as conn:
            listed = repo.get(conn, message_id)
            if listed is None:
                raise MessageNotFound(f"message {message_id} does not exist")
            if not repo.delete_finished(conn, message_id):
                raise Conflict(f"message {message_id} is being uploaded; it can be deleted once it is not")
        try:
            self.payloads.delete_message(message_id)
        except Exception:
            log.warning("payloads of deleted message %s not deleted", message_id, exc_info=True)
            return False
        return True


# -- declarations ----------------------------------------------------------------------------------

OFFSET = Arg("offset", N, "Entries to skip (paging).", optional=True, default=0, minimum=0, maximum=10**9)
LIMIT = Arg(
    "limit", N, "Entries to return at most (1-1000).", optional=True, default=100, minimum=1, maximum=1000
)
MESSAGE_ID = Arg("messageId", S, "The message id.")


def optional(name: str, kind: ArgType, description: str) -> Arg:
    return Arg(name, kind, description, optional=True, nullable=True, default=None)


def _mailbox(raw: str | None, name: str) -> str | None:
    if raw is None:
        return None
    normal = normalise_mailbox_id(raw)
    if normal is None:
        raise ValidationFailed("body", name, "a mailbox id is 1-100 letters, digits, _ or -", value=raw[:100])
    return normal


def _query(call: Call) -> MessageQuery:
    args = call.args
    direction = args["direction"]
    if direction not in (None, "in", "out"):
        raise ValidationFailed("body", "direction", "direction is in or out", value=str(direction)[:10])
    mailbox = _mailbox(args["mailboxId"], "mailboxId")
    if direction is not None and mailbox is None:
        raise ValidationFailed("body", "direction", "direction needs mailboxId")
    status = None
    if args["status"] is not None:
        try:
            status = MessageStatus(args["status"])
        except ValueError:
            names = ", ".join(s.value for s in MessageStatus)
            raise ValidationFailed(
                "body", "status", f"status is one of {names}", value=args["status"][:20]
            ) from None
    return MessageQuery(
        mailbox_id=mailbox,
        direction=direction,
        status=status,
        since=parse_time(args["from"], "from"),
        until=parse_time(args["to"], "to"),
        workflow_id=args["workflowId"],
        local_id=args["localId"],
    )


def message_functions(admin: MessageAdmin) -> list[Function]:
    def get_messages(call: Call) -> dict[str, Any]:
        total, page = admin.search(_query(call), offset=call.args["offset"], limit=call.args["limit"])
        return {"total": total, "messages": [listed_record(listed) for listed in page]}

    def get_details(call: Call) -> dict[str, Any]:
        return admin.details(message_id_arg(call))

    def reinject(call: Call) -> dict[str, Any]:
        return listed_record(admin.reinject(message_id_arg(call), call.user.name))

    def delete(call: Call) -> dict[str, Any]:
        message_id = message_id_arg(call)
        return {"messageId": message_id, "payloadsDeleted": admin.delete(message_id)}

    return [
        Function(
            "GetMessages",
            "Messages newest first, with their status and sizes (never their payload), filtered by "
            "mailbox and direction, status, creation time, workflow and local id.",
            READ,
            (
                optional("mailboxId", S, "Only messages sent or received by this mailbox."),
                optional("direction", S, "With mailboxId: `in` (received by it) or `out` (sent by it)."),
                optional("status", S, "uploading, accepted, acknowledged, undeliverable or error."),
                optional("from", S, "Only messages created at or after this ISO 8601 time (with its zone)."),
                optional("to", S, "Only messages created before this ISO 8601 time (with its zone)."),
                optional("workflowId", S, "Only messages of this workflow."),
                optional("localId", S, "Only messages with this local id."),
                OFFSET,
                LIMIT,
            ),
            run=get_messages,
            group="Messages",
        ),
        Function(
            "GetMessageDetails",
            "One message: its metadata, its status history, and its chunks with their sizes and "
            "SHA-256 checksums (never the payload).",
            READ,
            (MESSAGE_ID,),
            run=get_details,
            group="Messages",
        ),
        Function(
            "ReinjectMessage",
            "Put an expired (undeliverable) DATA message back into its recipient's inbox, accepted "
            "again with a fresh inbox expiry; the change is recorded in its history. Refused if its "
            "payload was purged (or is due for purge), or it is in another state.",
            ADMIN,
            (MESSAGE_ID,),
            run=reinject,
            group="Messages",
        ),
        Function(
            "DeleteMessage",
            "Delete a message: its rows, history and payloads. Refused while it is being uploaded.",
            ADMIN,
            (MESSAGE_ID,),
            run=delete,
            group="Messages",
        ),
    ]


# -- workflows -------------------------------------------------------------------------------------


def _workflow_id(call: Call) -> str:
    workflow_id = str(call.args["workflowId"]).strip()
    if not workflow_id or len(workflow_id) > 300:
        raise ValidationFailed("body", "workflowId", "a workflow id has 1-300 characters")
    return workflow_id


def _mailbox_list(call: Call, name: str) -> list[str]:
    value = call.args[name]
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 1000 or not all(isinstance(v, str) for v in value):
        raise ValidationFailed("body", name, f"{name} is a JSON list of mailbox ids")
    return [box for box in (_mailbox(v, name) for v in value) if box is not None]


def workflow_functions(mailboxes: MailboxService) -> list[Function]:
    def record(entry: tuple[str, list[str], list[str]]) -> dict[str, Any]:
        return {"workflowId": entry[0], "senders": entry[1], "receivers": entry[2]}

    def get_workflows(call: Call) -> list[dict[str, Any]]:
        return [record(entry) for entry in mailboxes.workflows(call.args["workflowId"])]

    def add_workflow(call: Call) -> dict[str, Any]:
        workflow_id = _workflow_id(call)
        senders, receivers = _mailbox_list(call, "senders"), _mailbox_list(call, "receivers")
        if not senders and not receivers:
            raise ValidationFailed("body", "senders", "give senders or receivers (JSON lists of mailbox ids)")
        added = mailboxes.add_workflow(workflow_id, senders, receivers)
        return {"added": added, **record(mailboxes.workflows(workflow_id)[0])}

    def remove_workflow(call: Call) -> dict[str, Any]:
        return {"removed": mailboxes.remove_workflow(_workflow_id(call))}

    return [
        Function(
            "GetWorkflows",
            "Registered workflows with their sending and receiving mailboxes.",
            READ,
            (optional("workflowId", S, "Only this workflow."),),
            run=get_workflows,
            group="Workflows",
        ),
        Function(
            "AddWorkflow",
            "Register mailboxes (which must exist) as senders and receivers of a workflow, beside "
            "those registered already; it applies to the next message sent.",
            ADMIN,
            (
                Arg("workflowId", S, "The workflow id."),
                optional("senders", J, 'Mailbox ids that may send it, a JSON list: ["ALICE"].'),
                optional("receivers", J, 'Mailbox ids that may receive it, a JSON list: ["BOB"].'),
            ),
            run=add_workflow,
            group="Workflows",
        ),
        Function(
            "RemoveWorkflow",
            "Remove a workflow: every registration of it.",
            ADMIN,
            (Arg("workflowId", S, "The workflow id."),),
            run=remove_workflow,
            group="Workflows",
        ),
    ]
