"""Helpers for the JSON messaging API's tests: logging in, and (until the token service lands on
this branch) a stand-in for ``Container.api_tokens``.

SHIM: ``ShimTokens`` stands in for ``services.api_tokens``'s service only while the container has
none; once it has, the tests log in through the real one and this class is unused. It signs
``mailbox:read_only`` with HMAC and checks mailbox passwords as stored; no rotation, no keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from fastapi.testclient import TestClient

from mailroom import errors
from mailroom.container import Container
from mailroom.services.api_tokens import ApiPrincipal, TokenPair

PASSWORD = "password"


class ShimTokens:  # SHIM until services/api_tokens.py's service lands
    def __init__(self, container: Container) -> None:
        self._container = container
        self._key = b"shim-test-key"

    def _sign(self, kind: str, mailbox_id: str, read_only: bool) -> str:
        claim = base64.urlsafe_b64encode(f"{kind}:{mailbox_id}:{int(read_only)}".encode()).decode()
        mac = hmac.new(self._key, claim.encode(), hashlib.sha256).hexdigest()
        return f"{claim}.{mac}"

    def _open(self, token: str, kind: str) -> ApiPrincipal:
        claim, _, mac = token.partition(".")
        wanted = hmac.new(self._key, claim.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(wanted, mac):
            raise errors.AuthenticationFailed(reason="bad token")
        try:
            found_kind, mailbox_id, read_only = base64.urlsafe_b64decode(claim).decode().split(":")
        except ValueError:
            raise errors.AuthenticationFailed(reason="bad token") from None
        if found_kind != kind:
            raise errors.AuthenticationFailed(reason="wrong kind")
        return ApiPrincipal(mailbox_id, read_only == "1", f"login-{mailbox_id}")

    def pair(self, mailbox_id: str, read_only: bool = False) -> TokenPair:
        return TokenPair(self._sign("a", mailbox_id, read_only), self._sign("r", mailbox_id, read_only), 3600)

    def authorize_password(self, mailbox_id: str, password: str, client: str | None = None) -> TokenPair:
        mailbox = self._container.mailboxes.get(mailbox_id.upper())
        if mailbox is None or not hmac.compare_digest(mailbox.password.encode(), password.encode()):
            raise errors.AuthenticationFailed(reason="bad password")
        return self.pair(mailbox.mailbox_id)

    def authorize_key(self, key_id: str, secret: str, client: str | None = None) -> TokenPair:
        raise errors.AuthenticationFailed(reason="no keys in the shim")

    def refresh(self, username: str, refresh_token: str) -> TokenPair:
        principal = self._open(refresh_token, "r")
        if principal.mailbox_id != username.upper():
            raise errors.AuthenticationFailed(reason="another mailbox's")
        return self.pair(principal.mailbox_id, principal.read_only)

    def verify(self, access_token: str) -> ApiPrincipal:
        return self._open(access_token, "a")


def ensure_tokens(container: Container) -> None:
    if getattr(container, "api_tokens", None) is None:
        container.api_tokens = ShimTokens(container)  # type: ignore[attr-defined]


def login(client: TestClient, mailbox: str, password: str = PASSWORD) -> str:
    response = client.post("/authorize", json={"username": mailbox, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["api_token"] == body["apiToken"]
    return str(body["apiToken"])
