"""The one domain error tree. No HTTP here: each face translates these once.

MailroomError
 ├── AuthenticationFailed      token missing, malformed, wrong, stale or replayed
 ├── ValidationFailed          a request value breaks a documented rule (field location known)
 ├── BadRequest                a MESH-coded 400 (blank Mex-To, invalid checksum)
 │    └── NotGzipBody          a body declared gzip that is not whole gzip
 ├── MalformedControlFile      MESH TRANSFER/06: control characters or URLs in headers
 ├── NotFound                  unknown mailbox, message or chunk
 │    └── MessageNotFound      MESH RECEIVE/20
 ├── Forbidden                 the caller may not touch this resource
 ├── Gone                      the message exists but can no longer be downloaded
 ├── UndecodablePayload        a stored gzip chunk that cannot be decompressed for a download
 ├── Locked                    chunk upload to a message that is already complete
 ├── ChunkOutOfRange           chunk number beyond the declared total
 ├── SendRejected              a send-side business rule (recipient, body, chunk header, workflow)
 ├── UnsupportedEncoding       Content-Encoding other than gzip
 ├── PayloadTooLarge           a body, message or count over the configured limit
 ├── Ambiguous                 more than one message matches (tracking by local id)
 ├── Conflict, CredentialsRefused, PermissionDenied (a Forbidden), TooManyAttempts
 ├── LinkRefused (a Forbidden) a signed link that is expired, altered or names nothing now
 └── RangeNotSatisfiable       a Range past the end of a file
"""

from __future__ import annotations


class MailroomError(Exception):
    """Base of every error Mailroom raises on purpose.

    ``event``/``code``/``description`` are the MESH error triple; ``message_id`` is set
    when the error concerns a known message.
    """

    event: str = ""
    code: str = ""
    description: str = "An internal error occurred."

    def __init__(
        self,
        description: str | None = None,
        *,
        event: str | None = None,
        code: str | None = None,
        message_id: str | None = None,
    ) -> None:
        if description is not None:
            self.description = description
        if event is not None:
            self.event = event
        if code is not None:
            self.code = code
        self.message_id = message_id
        super().__init__(self.description)


class AuthenticationFailed(MailroomError):
    """``reason`` says what was wrong, for the server's log only: the client gets ``description``
    alone (as MESH answers), so a caller probing mailboxes learns nothing more. ``reason`` names
    ids and counts, never a password, key, token or HMAC."""

    description = "Invalid Authentication Token"

    def __init__(
        self,
        description: str | None = None,
        *,
        reason: str = "",
        event: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(description, event=event, code=code)
        self.reason = reason


class ValidationFailed(MailroomError):
    """A request value is missing or out of range; rendered in FastAPI's validation shape."""

    def __init__(
        self, location: str, name: str, msg: str, *, kind: str = "value_error", value: str | None = None
    ) -> None:
        super().__init__(msg)
        self.location = location
        self.name = name
        self.kind = kind
        self.value = value


class BadRequest(MailroomError):
    description = "Bad request"


class NotGzipBody(BadRequest):
    """``Content-Encoding: gzip`` on a body (a message or one chunk) that is not whole gzip.
    MESH has no code of its own for it; "Invalid file format" is its "file not formed
    correctly" (docs/mesh-compatibility.md)."""

    event = "SEND"
    code = "Invalid file format"
    description = "Content-Encoding is gzip but the body is not a whole gzip stream"


class MalformedControlFile(MailroomError):
    event = "TRANSFER"
    code = "06"
    description = "MalformedControlFile"


class NotFound(MailroomError):
    description = "Not Found"


class MessageNotFound(NotFound):
    event = "RECEIVE"
    code = "20"
    description = "Message does not exist"


class Forbidden(MailroomError):
    description = "Forbidden"


class Gone(MailroomError):
    event = "SEND"
    code = "Message already accepted"
    description = "Message no longer available for download"


class UndecodablePayload(MailroomError):
    """A chunk stored gzip-encoded that is not gzip (stored before bodies were checked), asked
    for by a client that does not accept gzip: it cannot be sent decompressed."""

    event = "RECEIVE"
    code = "UndecodablePayload"
    description = "The stored chunk cannot be decompressed; ask with Accept-Encoding: gzip for it as stored"


class Locked(MailroomError):
    description = "Message has been finalised; no more chunks can be sent"


class ChunkOutOfRange(MailroomError):
    description = "Chunk number is beyond the message's total chunks"


class SendRejected(MailroomError):
    event = "SEND"


class UnsupportedEncoding(MailroomError):
    event = "SEND"
    code = "UnsupportedContentEncoding"
    description = "Unsupported content encoding"


class PayloadTooLarge(MailroomError):
    event = "SEND"
    code = "MaxSizeExceeded"
    description = "Request body exceeds the maximum size"


class Conflict(MailroomError):
    """The change would clash with what is stored (a mailbox that exists, one with messages waiting)."""

    description = "Conflict"


class Ambiguous(MailroomError):
    description = "Multiple messages match"


class CredentialsRefused(MailroomError):
    """A user name and password (the administration API's HTTP Basic) that do not match."""

    description = "Invalid user name or password"


class PermissionDenied(Forbidden):
    """An authenticated caller without the privilege the operation needs."""

    description = "Permission denied"


class TooManyAttempts(MailroomError):
    """Refused without checking: too many failed attempts from this client lately."""

    description = "Too many failed login attempts; try again later"

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


class LinkRefused(Forbidden):
    """A signed link that is expired, altered or names what no longer exists."""

    description = "This link is not valid (expired or altered)"


class RangeNotSatisfiable(MailroomError):
    """A ``Range`` that starts past the end of the file."""

    description = "Requested range not satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
