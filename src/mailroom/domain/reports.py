"""Non-delivery reports, built as pure data (spec §6.3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from mailroom.domain.messages import Message, StatusDetail

NOT_COLLECTED_CODE = "14"
SYSTEM_SENDER_NAME = "Central System Mailbox"


@dataclass(frozen=True)
class ReportSpec:
    """What to put in a REPORT addressed to the original sender."""

    recipient_id: str
    workflow_id: str
    local_id: str
    subject: str
    detail: StatusDetail


def not_collected_report(original: Message, retention: timedelta, *, deactivated: bool = False) -> ReportSpec:
    if deactivated:
        description = "Message was not collected as the mailbox is deactivated"
    else:
        description = f"Message not collected by recipient after {_describe(retention)}"
    return ReportSpec(
        recipient_id=original.sender.mailbox_id,
        workflow_id=original.meta.workflow_id,
        local_id=original.meta.local_id,
        subject=original.meta.subject,
        detail=StatusDetail(
            event="SEND",
            code=NOT_COLLECTED_CODE,
            description=description,
            linked_message_id=original.message_id,
        ),
    )


def _describe(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
