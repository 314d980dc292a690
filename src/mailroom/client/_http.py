"""One HTTP session to a MESH server: TLS, auth, retries with backoff, MESH error bodies."""

from __future__ import annotations

import json
import logging
import platform
import random
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ._auth import MeshAuth
from ._config import MeshConfig
from ._errors import (
    AuthenticationError,
    MeshApiError,
    MeshTransportError,
    MessageGoneError,
    MessageNotFoundError,
    RateLimitedError,
    ServerError,
    UnknownRecipientError,
)
from ._failures import tls_failure, transport_error

log = logging.getLogger("mailroom.client")

V2 = "application/vnd.mesh.v2+json"
CLIENT_VERSION = "mailroom-client/0.1"
RETRY_STATUSES = frozenset({425, 429, 500, 502, 503, 504})
#: connection failures where the request cannot have reached the server
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

Body = Callable[[], Iterable[bytes] | bytes]
"""Makes a request body afresh for each attempt (a stream can only be read once)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: up to ``attempts`` tries in all, waiting a random
    time ("full jitter") up to ``backoff * 2**(n-1)`` seconds (at most ``max_backoff``) before
    try n+1, or the server's ``Retry-After`` when it is longer (at most ``max_retry_after``)."""

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, failed_attempts: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_backoff, self.backoff * 2 ** (failed_attempts - 1))
        wait = random.uniform(0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    return None


def ssl_context(config: MeshConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(config.ca) if config.ca else None)
    if config.cert is not None and config.key is not None:
        context.load_cert_chain(str(config.cert), str(config.key))
    return context


def client_headers() -> dict[str, str]:
    uname = platform.uname()
    return {
        "Accept": V2,
        "User-Agent": f"{CLIENT_VERSION};N/A;{uname.machine};{uname.system};{uname.release}",
        "Mex-ClientVersion": CLIENT_VERSION,
        "Mex-OSName": uname.system or "unknown",
        "Mex-OSVersion": uname.release or "unknown",
        "Mex-OSArchitecture": uname.machine or "unknown",
        "Mex-JavaVersion": "N/A",
    }


def error_from(response: httpx.Response) -> MeshApiError:
    """The typed error for an error response (its body must have been read)."""
    code, event, description, message_id = _error_fields(response)
    status = response.status_code
    kwargs: dict[str, Any] = {"code": code, "event": event, "description": description}
    kwargs["message_id"] = message_id
    cls: type[MeshApiError] = MeshApiError
    if status == 403:
        cls = AuthenticationError
    elif status == 404:
        cls = MessageNotFoundError
    elif status == 410:
        cls = MessageGoneError
    elif status == 417 and code == "12":
        cls = UnknownRecipientError
    elif status == 429:
        cls = RateLimitedError
    elif status >= 500:
        cls = ServerError
    return cls(status, **kwargs)


def _error_fields(response: httpx.Response) -> tuple[str, str, str, str | None]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "", "", response.text.strip()[:500], None
    if not isinstance(body, dict):
        return "", "", str(body)[:500], None
    message_id = body.get("messageID") or body.get("message_id")
    detail = body.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        return str(first.get("code", "")), str(first.get("event", "")), str(first.get("msg", "")), message_id
    if "errorDescription" in body or "errorCode" in body:
        return (
            str(body.get("errorCode", "")),
            str(body.get("errorEvent", "")),
            str(body.get("errorDescription", "")),
            message_id,
        )
    text = detail if isinstance(detail, str) else body.get("message", "")
    return "", "", str(text), message_id


class Session:
    """An ``httpx.Client`` with MESH auth and headers, and :meth:`request` that retries."""

    def __init__(
        self,
        config: MeshConfig,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.http = httpx.Client(
            base_url=config.url,
            auth=MeshAuth(config.mailbox, config.password, config.shared_key),
            verify=ssl_context(config),
            headers=client_headers(),
            timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 30.0)),
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def send_once(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: Body | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """One attempt with a fresh token. httpx errors are not translated here."""
        content = body() if body is not None else None
        request = self.http.build_request(method, url, headers=headers, params=params, content=content)
        response = self.http.send(request, stream=stream)
        if stream and response.status_code >= 300:
            response.read()
        return response

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: Body | None = None,
        stream: bool = False,
        ok: Iterable[int] = (200, 202, 206),
    ) -> httpx.Response:
        """Send, retrying connection errors and 425/429/5xx answers; raise a typed error for
        any other status not in ``ok``. Only for requests that are safe to repeat."""
        wanted = frozenset(ok)
        failed = 0
        while True:
            try:
                response = self.send_once(
                    method, url, headers=headers, params=params, body=body, stream=stream
                )
            except httpx.TransportError as exc:
                failed += 1
                if failed >= self.retry.attempts or tls_failure(exc) is not None:
                    raise self.transport_error(method, url, exc, failed) from exc
                self.wait(failed, None, f"{method} {self.config.url}{url}: {exc!r}")
                continue
            if response.status_code in wanted:
                return response
            response.read()
            response.close()
            if response.status_code in RETRY_STATUSES:
                failed += 1
                if failed < self.retry.attempts:
                    self.wait(failed, retry_after(response), f"{method} {url}: HTTP {response.status_code}")
                    continue
            raise error_from(response)

    def transport_error(
        self, method: str, url: str, exc: httpx.TransportError, attempts: int, note: str = ""
    ) -> MeshTransportError:
        """The error for ``exc`` after ``attempts`` tries, naming the server and what to check."""
        return transport_error(self.config.url, f"{method} {url}", exc, attempts, note)

    def wait(self, failed: int, after: float | None, why: str) -> None:
        delay = self.retry.delay(failed, after)
        log.warning("%s; retry %d/%d in %.2fs", why, failed, self.retry.attempts - 1, delay)
        self.sleep(delay)
