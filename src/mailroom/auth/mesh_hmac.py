"""``NHSMESH`` HMAC-SHA256 tokens (spec §2): parse, sign, verify in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailroom.errors import AuthenticationFailed

SCHEME = "NHSMESH"
_TIMESTAMP = re.compile(r"[0-9]{12}")
_DIGITS = re.compile(r"^[0-9]+$")

READ_ERROR = "Error reading from Authorization header"
MISMATCH_ERROR = "Mailbox id does not match token"
INVALID_ERROR = "Invalid Authentication Token"
REPLAY_ERROR = "Error Duplicated Authentication Token"
STALE_ERROR = "Authentication token timestamp is outside the allowed window"
INACTIVE_ERROR = "Request Received from Inactive Mailbox"


@dataclass(frozen=True)
class MeshToken:
    mailbox_id: str
    nonce: str
    nonce_count: str
    timestamp: str
    hash: str

    def signed_text(self, password: str) -> str:
        return f"{self.mailbox_id}:{self.nonce}:{self.nonce_count}:{password}:{self.timestamp}"


def parse_token(header: str | None) -> MeshToken:
    """Lenient parse: optional ``NHSMESH `` scheme, exactly five colon-separated fields."""
    if header is None or not header.strip():
        raise AuthenticationFailed(READ_ERROR)
    text = header.strip()
    if text.upper().startswith(SCHEME):
        text = text[len(SCHEME) :].lstrip(" ")
    fields = text.split(":")
    if len(fields) != 5:
        raise AuthenticationFailed(READ_ERROR)
    mailbox_id, nonce, nonce_count, timestamp, digest = fields
    if not mailbox_id or " " in mailbox_id or not nonce or not _DIGITS.match(nonce_count) or not digest:
        raise AuthenticationFailed(READ_ERROR)
    return MeshToken(mailbox_id, nonce, nonce_count, timestamp, digest)


def compute_hash(shared_key: str, token: MeshToken, password: str) -> str:
    return hmac.new(shared_key.encode(), token.signed_text(password).encode(), hashlib.sha256).hexdigest()


def build_header(
    mailbox_id: str, password: str, shared_key: str, *, nonce: str, nonce_count: int = 0, at: datetime
) -> str:
    """A valid header, as a client makes one (used by tests and tools)."""
    stamp = at.astimezone(UTC).strftime("%Y%m%d%H%M")
    token = MeshToken(mailbox_id, nonce, str(nonce_count), stamp, "")
    return f"{SCHEME} {mailbox_id}:{nonce}:{nonce_count}:{stamp}:{compute_hash(shared_key, token, password)}"


def hash_matches(shared_key: str, token: MeshToken, password: str) -> bool:
    expected = compute_hash(shared_key, token, password)
    return hmac.compare_digest(expected.encode(), token.hash.lower().encode())


def token_time(token: MeshToken) -> datetime | None:
    if not _TIMESTAMP.fullmatch(token.timestamp):
        return None
    text = token.timestamp  # twelve digits (checked above): read as numbers, not by strptime
    try:
        return datetime(
            int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]), tzinfo=UTC
        )
    except ValueError:  # month 13, 31 February, hour 24...
        return None


def within_window(token: MeshToken, now: datetime, skew: timedelta) -> bool:
    stamp = token_time(token)
    return stamp is not None and abs(now - stamp) <= skew


def replay_key(token: MeshToken) -> str:
    """What makes a token unique: mailbox, nonce, count, timestamp and hash."""
    raw = f"{token.mailbox_id}:{token.nonce}:{token.nonce_count}:{token.timestamp}:{token.hash.lower()}"
    return hashlib.sha256(raw.encode()).hexdigest()
