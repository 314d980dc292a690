"""Response bodies of the MESH API, per version (spec §5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailroom.domain.mailboxes import Mailbox
from mailroom.domain.messages import Message
from mailroom.web.wire.headers import mesh_time


def iso(value: datetime | None) -> str | None:
    """ISO-8601 in UTC without offset, as mesh-sandbox writes v2 times."""
    return value.replace(tzinfo=None).isoformat() if value else None


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


def _status_success(message: Message) -> bool:
    return not message.is_report and not message.has_error


def tracking_v2(message: Message) -> dict[str, Any]:
    detail = message.detail
    reported = message.has_error
    return _drop_none(
        {
            "message_id": message.message_id,
            "local_id": message.meta.local_id or None,
            "workflow_id": message.meta.workflow_id or None,
            "filename": message.file_name_or_default,
            "expiry_time": iso(message.inbox_expires_at),
            "upload_timestamp": iso(message.created_at),
            "recipient": message.recipient.mailbox_id,
            "recipient_name": message.recipient.name or None,
            "recipient_ods_code": message.recipient.ods_code or None,
            "recipient_org_code": message.recipient.org_code or None,
            "recipient_org_name": message.recipient.org_name or None,
            "status_success": _status_success(message),
            "status": message.status.value,
            "status_event": detail.event if reported and detail.event else None,
            "status_timestamp": iso(message.status_at) if reported else None,
            "status_description": detail.description if reported and detail.description else None,
            "status_code": detail.code if reported and detail.code else None,
        }
    )


def tracking_v1(message: Message) -> dict[str, Any]:
    meta = message.meta
    detail = message.detail
    failed = message.has_error and not message.is_report
    return {
        "addressType": "ALL",
        "checksum": meta.checksum,
        "chunkCount": message.total_chunks,
        "compressFlag": "Y" if meta.compressed else "",
        "contentEncoding": meta.content_encoding,
        "downloadTimestamp": mesh_time(message.acknowledged_at),
        "dtsId": message.message_id,
        "encryptedFlag": "Y" if meta.encrypted else "",
        "expiryTime": mesh_time(message.inbox_expires_at),
        "failureDate": mesh_time(message.status_at) if failed else "",
        "failureDiagnostic": detail.description if failed else "",
        "fileName": message.file_name_or_default,
        "fileSize": message.file_size,
        "isCompressed": "Y" if meta.content_encoding == "gzip" else "",
        "linkedMsgId": detail.linked_message_id or None,
        "localId": meta.local_id,
        "meshRecipientOdsCode": message.recipient.ods_code,
        "messageId": message.message_id,
        "messageType": message.message_type.value.title(),
        "partnerId": meta.partner_id,
        "recipient": message.recipient.mailbox_id,
        "recipientName": message.recipient.name,
        "recipientOrgCode": message.recipient.org_code,
        "recipientOrgName": message.recipient.org_name,
        "recipientBillingEntity": message.recipient.billing_entity,
        "recipientSmtp": "",
        "sender": message.sender.mailbox_id,
        "senderName": message.sender.name,
        "senderOdsCode": message.sender.ods_code,
        "senderOrgCode": message.sender.org_code,
        "senderOrgName": message.sender.org_name,
        "senderBillingEntity": message.sender.billing_entity,
        "senderSmtp": "",
        "status": message.status.value.title(),
        "statusCode": detail.code or ("00" if _status_success(message) else ""),
        "statusDescription": detail.description
        or ("Transferred to recipient mailbox" if _status_success(message) else ""),
        "statusEvent": detail.event or ("TRANSFER" if _status_success(message) else ""),
        "statusSuccess": "SUCCESS" if _status_success(message) else "ERROR",
        "statusTimestamp": mesh_time(message.status_at),
        "subject": meta.subject,
        "uploadTimestamp": mesh_time(message.created_at),
        "version": "1.0",
        "workflowId": meta.workflow_id,
    }


def rich_item(message: Message, *, outbox: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "message_id": message.message_id,
        "expiry_timestamp": iso(message.inbox_expires_at),
        "local_id": message.meta.local_id or None,
        "message_type": message.message_type.value,
        "recipient": message.recipient.mailbox_id,
        "recipient_name": message.recipient.name or None,
        "sender": message.sender.mailbox_id,
        "sender_name": message.sender.name or None,
        "sent_date": iso(message.created_at),
        "status": message.status.value,
        "status_code": message.detail.code or None,
        "workflow_id": message.meta.workflow_id or None,
        "total_chunks": message.total_chunks,
    }
    if outbox:
        for key in ("local_id", "message_type", "status_code", "workflow_id", "recipient_name"):
            if item[key] is None:
                item[key] = ""
        return item
    return _drop_none(item)


def message_details(message: Message) -> dict[str, Any]:
    """mesh-sandbox's admin MessageDetails (snake_case, nulls left out)."""
    meta = message.meta
    detail = message.detail
    failed = message.has_error and not message.is_report
    return _drop_none(
        {
            "checksum": meta.checksum,
            "chunk_count": message.total_chunks,
            "content_encoding": meta.content_encoding,
            "download_timestamp": iso(message.acknowledged_at),
            "expiry_time": iso(message.inbox_expires_at),
            "failure_date": iso(message.status_at) if failed else None,
            "failure_diagnostic": detail.description if failed else None,
            "filename": message.file_name_or_default,
            "file_size": message.file_size,
            "is_compressed": meta.compressed,
            "is_encrypted": meta.encrypted,
            "linked_msg_id": detail.linked_message_id or None,
            "local_id": meta.local_id,
            "message_id": message.message_id,
            "message_type": message.message_type.value.title(),
            "recipient": message.recipient.mailbox_id,
            "recipient_name": message.recipient.name,
            "recipient_ods_code": message.recipient.ods_code,
            "recipient_org_code": message.recipient.org_code,
            "recipient_org_name": message.recipient.org_name,
            "sender": message.sender.mailbox_id,
            "sender_name": message.sender.name,
            "sender_ods_code": message.sender.ods_code,
            "sender_org_code": message.sender.org_code,
            "sender_org_name": message.sender.org_name,
            "status": message.status.value.title(),
            "status_code": detail.code or None,
            "status_description": detail.description or None,
            "status_event": detail.event or None,
            "status_success": "ERROR" if message.has_error or message.is_report else "SUCCESS",
            "status_timestamp": iso(message.status_at),
            "subject": meta.subject,
            "upload_timestamp": iso(message.created_at),
            "workflow_id": meta.workflow_id,
        }
    )


def mailbox_details(mailbox: Mailbox) -> dict[str, Any]:
    return {
        "mailbox_id": mailbox.mailbox_id,
        "mailbox_name": mailbox.mailbox_name,
        "billing_entity": mailbox.billing_entity,
        "ods_code": mailbox.ods_code,
        "org_code": mailbox.org_code,
        "org_name": mailbox.org_name,
        "active": mailbox.active,
    }
