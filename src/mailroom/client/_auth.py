"""``NHSMESH`` authentication tokens (HMAC-SHA256), a fresh one for every request sent."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Generator
from datetime import UTC, datetime

import httpx

SCHEME = "NHSMESH"


def build_token(
    mailbox: str,
    password: str,
    shared_key: str,
    *,
    nonce: str,
    nonce_count: int = 1,
    when: datetime | None = None,
) -> str:
    """The ``Authorization`` value for one request.

    The hash is the lower-case hex HMAC-SHA256, keyed with the shared key, of
    ``mailbox:nonce:nonce_count:password:timestamp``; the timestamp is ``yyyyMMddHHmm`` in UTC.
    """
    stamp = (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M")
    signed = f"{mailbox}:{nonce}:{nonce_count}:{password}:{stamp}"
    digest = hmac.new(shared_key.encode(), signed.encode(), hashlib.sha256).hexdigest()
    return f"{SCHEME} {mailbox}:{nonce}:{nonce_count}:{stamp}:{digest}"


class MeshAuth(httpx.Auth):
    """Signs every request with a new token (a fresh nonce), so retries are never replays.

    MESH tokens are single use: a server that enforces this answers 403 to a token it has
    seen before. httpx runs ``auth_flow`` for every request it sends, including each attempt
    of a retried call, so each attempt carries a token of its own.
    """

    def __init__(self, mailbox: str, password: str, shared_key: str) -> None:
        self.mailbox = mailbox
        self._password = password
        self._shared_key = shared_key

    def token(self) -> str:
        return build_token(self.mailbox, self._password, self._shared_key, nonce=str(uuid.uuid4()))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self.token()
        yield request
