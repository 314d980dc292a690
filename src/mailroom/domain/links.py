"""Signed, expiring links: a token that names one file and when it stops working.

``<payload>.<mac>``, both URL-safe base64 without padding: the payload is compact JSON of the
claims and ``x`` (the expiry, Unix seconds), the MAC an HMAC-SHA256 of the payload's text with
the server's link key. Anything else — a changed byte, a cut token, another key, a time past
``x`` — is refused the same way (``LinkRefused``), and the MAC is compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime

from mailroom.errors import LinkRefused

#: Far longer than any token this server makes (about 200 characters): refused unread.
MAX_TOKEN = 2048


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a link key needs at least 128 bits")
        self._key = key

    def _mac(self, payload: str) -> str:
        return _encode(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def sign(self, claims: dict[str, str], expires_at: datetime) -> str:
        body = {**claims, "x": int(expires_at.timestamp())}
        payload = _encode(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, now: datetime) -> dict[str, str]:
        """The claims of a token this key signed that has not expired; else LinkRefused."""
        if len(token) > MAX_TOKEN or not token.isascii():
            raise LinkRefused()
        payload, dot, mac = token.partition(".")
        if not dot or not hmac.compare_digest(self._mac(payload).encode(), mac.encode()):
            raise LinkRefused()
        try:
            body = json.loads(_decode(payload))
        except (ValueError, binascii.Error):
            raise LinkRefused() from None
        expires = body.pop("x", None) if isinstance(body, dict) else None
        if not isinstance(expires, int) or expires < now.timestamp():
            raise LinkRefused()
        claims = {str(k): v for k, v in body.items() if isinstance(v, str)}
        if len(claims) != len(body):
            raise LinkRefused()
        return claims
