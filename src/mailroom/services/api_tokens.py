"""Tokens of the JSON messaging API: logins by mailbox password or API key, short-lived signed
access tokens, rotating refresh tokens, API keys.

INTERFACE (being filled in): the JSON faces depend on exactly these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ApiPrincipal:
    """Who a request's access token speaks for."""

    mailbox_id: str
    read_only: bool
    login_id: str


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token is valid for


@dataclass(frozen=True)
class ApiKeyInfo:
    key_id: str
    mailbox_id: str
    read_only: bool
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewApiKey:
    info: ApiKeyInfo
    secret: str  # shown once, never stored
