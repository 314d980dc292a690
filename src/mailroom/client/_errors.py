"""The client's exception tree.

::

    MeshError
    ├── ConfigError                  connection settings missing or invalid
    ├── MeshTransportError           the server could not be reached (after retries)
    │   └── MeshTLSError             TLS failed (wrong scheme, untrusted certificate): not retried
    ├── ProtocolError                the server answered something that is not MESH
    ├── SendOutcomeUnknown           a send may or may not have landed, and tracking could not tell
    └── MeshApiError                 the server refused: carries status, MESH event, code, description
        ├── AuthenticationError      403: bad mailbox, password, shared key or token
        ├── UnknownRecipientError    417 SEND/12: the recipient mailbox is not registered
        ├── MessageNotFoundError     404: no such message (or not yours)
        ├── MessageGoneError         410: no longer downloadable (acknowledged, expired, failed)
        ├── RateLimitedError         429: still throttled after the retries
        └── ServerError              5xx: still failing after the retries
"""

from __future__ import annotations


class MeshError(Exception):
    """Base class of every error the client raises."""


class ConfigError(MeshError):
    """Connection settings are missing or invalid. ``missing`` names the required settings
    that were not given (``url``, ``mailbox``, ``password``, ``shared_key``), if any."""

    def __init__(self, message: str, *, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing


class MeshTransportError(MeshError):
    """The server could not be reached, or the connection broke, on every attempt. ``url``
    is the server's base URL."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class MeshTLSError(MeshTransportError):
    """The TLS handshake failed: an https URL for a plain-HTTP server, a certificate that the
    CA bundle does not trust, a refused client certificate. Retrying cannot help, so it is not
    retried."""


class ProtocolError(MeshError):
    """The server's answer does not follow the MESH protocol."""


class SendOutcomeUnknown(MeshError):
    """The first request of a send failed after it may have been accepted, and tracking the
    message by its local id could not settle whether it landed. Do not resend blindly: track
    ``local_id`` later (or ask the recipient)."""

    def __init__(self, message: str, *, local_id: str) -> None:
        super().__init__(message)
        self.local_id = local_id


class MeshApiError(MeshError):
    """The server answered with an error. ``code``, ``event`` and ``description`` are MESH's."""

    def __init__(
        self,
        status_code: int,
        *,
        code: str = "",
        event: str = "",
        description: str = "",
        message_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.event = event
        self.description = description
        self.message_id = message_id
        parts = [f"HTTP {status_code}"]
        if event or code:
            parts.append("/".join(part for part in (event, code) if part))
        if description:
            parts.append(description)
        super().__init__(": ".join(parts))


class AuthenticationError(MeshApiError):
    """403: the mailbox, password, shared key or token was refused."""


class UnknownRecipientError(MeshApiError):
    """417 SEND/12: the recipient mailbox is not registered."""


class MessageNotFoundError(MeshApiError):
    """404: the message does not exist, or it is not in this mailbox."""


class MessageGoneError(MeshApiError):
    """410: the message is no longer available (acknowledged, expired or failed)."""


class RateLimitedError(MeshApiError):
    """429: the server kept asking to slow down after every retry."""


class ServerError(MeshApiError):
    """5xx: the server kept failing after every retry."""
