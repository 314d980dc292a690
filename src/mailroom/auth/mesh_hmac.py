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
    """Lenient parse: optional ``NHSMESH `` scheme, exactly five colon-separated fields.

    A refusal's ``reason`` (for the server's log) says which part was wrong."""
    if header is None or not header.strip():
        raise _unreadable(
            "no Authorization header" if header is None else "the Authorization header is blank"
        )
    text = header.strip()
    schemed = text.upper().startswith(SCHEME)
    if schemed:
        text = text[len(SCHEME) :].lstrip(" ")
    fields = text.split(":")
    if len(fields) != 5:
        problem = None if schemed else _scheme_problem(fields[0])
        raise _unreadable(problem or _field_count_problem(len(fields), text))
    mailbox_id, nonce, nonce_count, timestamp, digest = fields
    if not mailbox_id or " " in mailbox_id or not nonce or not _DIGITS.match(nonce_count) or not digest:
        problem = None if schemed else _scheme_problem(mailbox_id)
        raise _unreadable(problem or _field_problem(mailbox_id, nonce, nonce_count, digest))
    return MeshToken(mailbox_id, nonce, nonce_count, timestamp, digest)


#: Authorization schemes a misconfigured client may send, named in the log when seen. Any other
#: first word is not repeated: it could be part of a secret.
_OTHER_SCHEMES = {
    "basic",
    "bearer",
    "digest",
    "negotiate",
    "ntlm",
    "token",
    "hoba",
    "mutual",
    "aws4-hmac-sha256",
}


def shown(value: str, limit: int = 40) -> str:
    """``value`` quoted for a log line: escaped (no line breaks or control characters from the
    request reach the log) and cut to ``limit`` characters."""
    return repr(value[:limit] + "..." if len(value) > limit else value)


def _unreadable(reason: str) -> AuthenticationFailed:
    return AuthenticationFailed(READ_ERROR, reason=f"malformed header: {reason}")


def _scheme_problem(first_field: str) -> str | None:
    """A scheme other than NHSMESH: a word and a space before the first colon."""
    word, space, _rest = first_field.partition(" ")
    if not space:
        return None
    if word.lower() in _OTHER_SCHEMES:
        return f"the scheme is {word!r}, not {SCHEME}"
    return f"the header does not start with {SCHEME} but with another word and a space (not repeated here)"


def _field_count_problem(count: int, text: str) -> str:
    if not text:
        return f"nothing after the {SCHEME} scheme"
    return (
        f"{count} colon-separated field{'s' if count != 1 else ''}, "
        "expected 5 (mailbox:nonce:nonce_count:timestamp:hmac)"
    )


def _field_problem(mailbox_id: str, nonce: str, nonce_count: str, digest: str) -> str:
    if not mailbox_id:
        return "the mailbox id (field 1) is empty"
    if " " in mailbox_id:
        return f"the mailbox id {shown(mailbox_id)} contains a space"
    if not nonce:
        return "the nonce (field 2) is empty"
    if not _DIGITS.match(nonce_count):
        return f"the nonce count (field 3) is not a whole number ({_looks(nonce_count)})"
    return "the HMAC (field 5) is empty"


def _looks(value: str) -> str:
    """What a field that may hold anything looks like, without repeating it: a client that puts
    its fields in the wrong order (the signed text's order, say) could have put its password
    there."""
    kinds = [
        name
        for name, present in (
            ("digits", any(c.isdigit() for c in value)),
            ("letters", any(c.isalpha() for c in value)),
            ("other characters", any(not c.isalnum() for c in value)),
        )
        if present
    ]
    return f"{len(value)} characters: {', '.join(kinds) or 'none'}"


def timestamp_problem(token: MeshToken) -> str | None:
    """Why the token's timestamp cannot be read (None when it can); for the log."""
    if token_time(token) is not None:
        return None
    if token.timestamp.isascii() and token.timestamp.isdigit() and len(token.timestamp) <= 14:
        return f"the timestamp (field 4) {token.timestamp!r} is not a valid UTC time yyyyMMddHHmm"
    return f"the timestamp (field 4) is not 12 digits yyyyMMddHHmm ({_looks(token.timestamp)})"


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
