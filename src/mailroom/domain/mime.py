"""A ``multipart/mixed`` document of known size, streamed: a text body and attachments.

This is how a message with a body or several attachments reaches a MESH recipient: one payload
a MIME reader (Python's ``email``, any mail client) splits back into the body and each file.
Its length is known before a byte is read (the MESH download's ``Content-Length``) and the
attachments stream through it, never held in memory.

- The body is ``text/plain; charset=utf-8``: 7bit when it is ASCII with short lines and
  without the boundary, else base64 (always safe, whatever the text).
- Each attachment is ``Content-Transfer-Encoding: binary`` under its own type, named in
  ``Content-Disposition``: a plain name as ``filename``, any other by RFC 2231's ``filename*``
  (UTF-8, percent-encoded: quotes, CR, LF and slashes cannot break the header).
- The boundary is given (derived from the message id: the same document every time).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import quote

_SAFE_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class MimePart:
    name: str
    content_type: str
    size: int


def _disposition(name: str) -> str:
    """``filename`` for a plain name; RFC 2231's ``filename*`` alone for any other (readers
    that know both may prefer the plain one, which would then not be the name)."""
    if name.isascii() and name.isprintable() and not any(c in name for c in '"\\;') and len(name) <= 200:
        return f'attachment; filename="{name}"'
    return f"attachment; filename*=UTF-8''{quote(name, safe='')}"


def _content_type(value: str) -> str:
    """An attachment's type as a header value, or octet-stream for one that could break it."""
    ok = value and value.isascii() and value.isprintable() and "/" in value and len(value) <= 200
    return value if ok else _SAFE_TYPE


def _body_part(body: str, boundary: str) -> tuple[bytes, bytes]:
    """(headers, encoded text) of the body part: as it is when that is safe, else base64."""
    data = body.encode("utf-8")
    plain = body.isascii() and "\r" not in body and boundary not in body
    if plain and all(len(line) <= 900 for line in body.splitlines()):
        return b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n", (
            body.replace("\n", "\r\n").encode("ascii")
        )
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n", encoded


class MimeLayout:
    def __init__(self, boundary: str, body: str | None, parts: Sequence[MimePart]) -> None:
        if not boundary or len(boundary) > 60 or not boundary.replace("-", "").isalnum():
            raise ValueError(f"unusable MIME boundary {boundary!r}")
        self.boundary = boundary
        self._body = _body_part(body, boundary) if body is not None else None
        self.parts = list(parts)
        self._heads = [self._head(part) for part in self.parts]

    def _head(self, part: MimePart) -> bytes:
        return (
            f"--{self.boundary}\r\n"
            f"Content-Type: {_content_type(part.content_type)}\r\n"
            f"Content-Disposition: {_disposition(part.name)}\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            "\r\n"
        ).encode("ascii")

    @property
    def content_type(self) -> str:
        return f'multipart/mixed; boundary="{self.boundary}"'

    def _opening(self) -> bytes:
        if self._body is None:
            return b""
        headers, text = self._body
        return f"--{self.boundary}\r\n".encode() + headers + text + b"\r\n"

    def _closing(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode()

    @property
    def size(self) -> int:
        """The document's exact length in bytes."""
        parts = sum(len(head) + part.size + 2 for head, part in zip(self._heads, self.parts, strict=True))
        return len(self._opening()) + parts + len(self._closing())

    def pieces(self, open_attachment: Callable[[int], Iterator[bytes]]) -> Iterator[bytes]:
        """The document, each attachment's bytes from ``open_attachment(index)`` as they come."""
        yield self._opening()
        for index, head in enumerate(self._heads):
            yield head
            yield from open_attachment(index)
            yield b"\r\n"
        yield self._closing()
