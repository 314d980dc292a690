"""SHIM (temporary, replaced by the helper's module)."""
from __future__ import annotations
import base64, hashlib, hmac, json
from datetime import datetime
from mailroom.errors import LinkRefused

class LinkSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key
    def sign(self, claims: dict[str, str], expires_at: datetime) -> str:
        body = base64.urlsafe_b64encode(json.dumps({**claims, "x": int(expires_at.timestamp())}).encode()).rstrip(b"=")
        mac = base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).rstrip(b"=")
        return (body + b"." + mac).decode()
    def verify(self, token: str, now: datetime) -> dict[str, str]:
        try:
            body, mac = token.encode("ascii").split(b".")
            good = base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).rstrip(b"=")
            if not hmac.compare_digest(good, mac):
                raise ValueError
            claims = json.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
        except (ValueError, UnicodeError):
            raise LinkRefused() from None
        if claims.pop("x") < now.timestamp():
            raise LinkRefused()
        return claims
