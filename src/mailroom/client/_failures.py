"""Connection failures explained: which URL was tried, what went wrong, what to check.

httpx reports a refused connection as ``ConnectError('[Errno 111] Connection refused')`` and
an https URL for a plain-HTTP server as ``ConnectError('[SSL: WRONG_VERSION_NUMBER] ...')``.
Neither names the server, and the second is not worth retrying. :func:`tls_failure` finds
the TLS error behind an httpx error; :func:`transport_error` turns a failure into a
:class:`MeshTransportError` (or :class:`MeshTLSError`) whose message says what to check.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit, urlunsplit

import httpx

from ._errors import MeshTLSError, MeshTransportError

#: OpenSSL's reasons for "the other side does not speak TLS" (it answered in plain HTTP)
NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"}
)
#: TLS errors a retry can cure: the connection dropped during the handshake
TRANSIENT_TLS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


def tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc`` (following its causes), unless a retry could cure it."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain is short; never loop on a cyclic one
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return None if isinstance(seen, TRANSIENT_TLS) else seen
        seen = seen.__cause__ or seen.__context__
    return None


def with_scheme(url: str, scheme: str) -> str:
    return urlunsplit(urlsplit(url)._replace(scheme=scheme))


def transport_error(
    base_url: str, what: str, exc: httpx.TransportError, attempts: int, note: str = ""
) -> MeshTransportError:
    """The error to raise for ``exc``, met by request ``what`` (``GET /path``) to ``base_url``
    on the last of ``attempts`` tries; ``note`` is added to the message."""
    tail = f"; {note}" if note else ""
    tls = tls_failure(exc)
    if tls is not None:
        return MeshTLSError(f"{base_url}: {_tls_advice(base_url, tls)}{tail}", url=base_url)
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    return MeshTransportError(_advice(base_url, what, exc, tries) + tail, url=base_url)


def _tls_advice(base_url: str, error: ssl.SSLError) -> str:
    reason = str(getattr(error, "reason", "") or "")
    if reason in NOT_TLS_REASONS:
        return (
            f"TLS handshake failed ({error}): the server does not speak TLS on this port; "
            f"if it serves plain HTTP (as `mailroom serve` does without --tls-cert), "
            f"use {with_scheme(base_url, 'http')}"
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"the server's certificate is not trusted ({error.verify_message or error}); "
            "give the CA bundle that signs it with --ca or MESH_CA"
        )
    if "CERTIFICATE" in reason:
        return f"TLS handshake failed ({error}); does the server want a client certificate (--cert, --key)?"
    return f"TLS handshake failed ({error})"


def _advice(base_url: str, what: str, exc: httpx.TransportError, tries: str) -> str:
    text = str(exc) or type(exc).__name__
    check = "Check the URL: http:// or https://, host and port."
    if isinstance(exc, httpx.ConnectTimeout):
        return (
            f"could not connect to {base_url} (timed out, {tries}): is the server up and reachable? {check}"
        )
    if isinstance(exc, httpx.ConnectError):
        if "refused" in text.lower():
            refused = f"could not connect to {base_url} (connection refused, {tries})"
            return f"{refused}: is the server running? {check}"
        return f"could not connect to {base_url} ({text}, {tries}). {check}"
    if isinstance(exc, httpx.RemoteProtocolError) and urlsplit(base_url).scheme == "http":
        https = with_scheme(base_url, "https")
        return f"{what} at {base_url}: {text} ({tries}); if the server serves HTTPS, use {https}"
    return f"{what} at {base_url}: {text} ({tries})"
