"""Messages, their statuses and the pure rules about them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class MessageType(StrEnum):
    DATA = "DATA"
    REPORT = "REPORT"


class MessageStatus(StrEnum):
    UPLOADING = "uploading"
    ACCEPTED = "accepted"
    ACKNOWLEDGED = "acknowledged"
    UNDELIVERABLE = "undeliverable"
    ERROR = "error"


#: Statuses whose payload may be purged once the payload retention has passed.
FINISHED_STATUSES = (MessageStatus.ACKNOWLEDGED, MessageStatus.UNDELIVERABLE, MessageStatus.ERROR)

_DIGITS = re.compile(r"^[0-9]{1,9}$")

TRUE_WORDS = frozenset({"y", "yes", "t", "true", "on", "1"})


def parse_flag(value: str | None) -> bool:
    """mesh-sandbox's lenient boolean: true words are true, anything else is false."""
    return value is not None and value.strip().lower() in TRUE_WORDS


@dataclass(frozen=True)
class Party:
    """A mailbox as copied onto a message when it was sent (sender or recipient)."""

    mailbox_id: str = ""
    name: str = ""
    ods_code: str = ""
    org_code: str = ""
    org_name: str = ""
    billing_entity: str = ""


@dataclass(frozen=True)
class Metadata:
    """What the sender said about the content; travels with the message unchanged."""

    workflow_id: str = ""
    subject: str = ""
    local_id: str = ""
    partner_id: str = ""
    file_name: str = ""
    content_type: str = ""
    content_encoding: str = ""
    checksum: str = ""
    encrypted: bool = False
    compressed: bool = False


@dataclass(frozen=True)
class StatusDetail:
    """The event/code/description of a report or failure."""

    event: str = ""
    code: str = ""
    description: str = ""
    linked_message_id: str = ""


@dataclass(frozen=True)
class Message:
    message_id: str
    message_type: MessageType
    sender: Party
    recipient: Party
    meta: Metadata
    total_chunks: int
    file_size: int
    status: MessageStatus
    detail: StatusDetail
    created_at: datetime
    status_at: datetime
    accepted_at: datetime | None
    acknowledged_at: datetime | None
    inbox_expires_at: datetime | None

    @property
    def is_report(self) -> bool:
        return self.message_type is MessageType.REPORT

    @property
    def has_error(self) -> bool:
        return bool(self.detail.code or self.detail.event) or self.status in (
            MessageStatus.ERROR,
            MessageStatus.UNDELIVERABLE,
        )

    @property
    def file_name_or_default(self) -> str:
        return self.meta.file_name or f"{self.message_id}.dat"


@dataclass(frozen=True)
class ChunkRange:
    number: int
    total: int


def parse_chunk_range(raw: str | None, *, max_chunks: int) -> ChunkRange | None:
    """``"k:n"`` → ChunkRange, or None when it is malformed or out of bounds."""
    if raw is None:
        return None
    first, sep, second = raw.strip().partition(":")
    if not sep or not _DIGITS.match(first) or not _DIGITS.match(second):
        return None
    number, total = int(first), int(second)
    if number < 1 or total < 1 or number > total or total > max_chunks:
        return None
    return ChunkRange(number, total)


@dataclass(frozen=True)
class WorkflowFilter:
    """mesh-sandbox's grammar: ``X``, ``!X``, ``X*``, ``!X*``, ``*X*``, ``!*X*``."""

    negate: bool
    mode: str  # "equals" | "prefix" | "contains"
    value: str

    @classmethod
    def parse(cls, raw: str) -> WorkflowFilter:
        text = raw.strip()
        negate = text.startswith("!")
        if negate:
            text = text[1:]
        if text.startswith("*"):
            return cls(negate, "contains", text[1:-1] if text.endswith("*") else text[1:])
        if text.endswith("*"):
            return cls(negate, "prefix", text[:-1])
        return cls(negate, "equals", text)

    def matches(self, workflow_id: str) -> bool:
        if self.mode == "contains":
            hit = self.value in workflow_id
        elif self.mode == "prefix":
            hit = workflow_id.startswith(self.value)
        else:
            hit = workflow_id == self.value
        return hit != self.negate
