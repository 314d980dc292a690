"""Administrators, their privileges, the administration functions' argument types, audit entries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

#: Administrator names: letters, digits and ``._@-``, 1-100 characters.
ADMIN_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
#: Shortest administrator password accepted.
MIN_PASSWORD_LENGTH = 8


class Privilege(StrEnum):
    """What an administrator may call: ``read`` only functions that change nothing."""

    READ = "read"
    ADMIN = "admin"

    def allows(self, needed: Privilege) -> bool:
        return self is Privilege.ADMIN or needed is Privilege.READ


class ArgType(StrEnum):
    """An argument's type, as ``get-metadata`` names it (MailStore's four)."""

    STRING = "string"
    NUMBER = "number"
    BOOL = "bool"
    JSON = "json"


@dataclass(frozen=True)
class AdminUser:
    name: str
    privilege: Privilege
    created_at: datetime
    password_changed_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    entry_id: int
    at: datetime
    user: str
    peer: str
    function: str
    arguments: dict[str, Any]
    outcome: str  # succeeded | failed | running | refused
    error: str
    job_id: str
