"""Mailboxes and workflow registrations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

_MAILBOX_ID = re.compile(r"^[A-Z0-9_\-]{1,100}$")


def normalise_mailbox_id(raw: str) -> str | None:
    """Upper-case and check a mailbox id; None if it cannot name a mailbox."""
    candidate = raw.strip().upper()
    return candidate if _MAILBOX_ID.match(candidate) else None


@dataclass(frozen=True)
class Mailbox:
    mailbox_id: str
    mailbox_name: str
    password: str
    ods_code: str = ""
    org_code: str = ""
    org_name: str = ""
    billing_entity: str = ""
    active: bool = True
    last_handshake_at: datetime | None = None


class WorkflowRole(StrEnum):
    SENDER = "sender"
    RECEIVER = "receiver"


@dataclass(frozen=True)
class WorkflowRegistration:
    workflow_id: str
    mailbox_id: str
    role: WorkflowRole
