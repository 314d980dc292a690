"""How a JSON API message is seen on the MESH face, and how its attachments' bytes are read.

One attachment and no body: that attachment is the MESH payload (its name, type and size).
Anything else (a body, several attachments, a body alone): one ``multipart/mixed`` document
holding the body and every attachment, composed while it is downloaded, never stored: the
attachments' bytes are on disk once, however many recipients and faces read them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mailroom.domain.mime import MimeLayout, MimePart
from mailroom.storage.payloads import PayloadStore
from mailroom.storage.repos.envelopes import AttachmentRow

#: What ``messages.content_type`` holds at most; a longer attachment type is given as bytes.
_CONTENT_TYPE_COLUMN = 100
DEFAULT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class MeshRendering:
    """The metadata of a delivery's MESH message."""

    file_name: str
    content_type: str
    size: int
    composed: bool  # True: a multipart/mixed document; False: the one attachment as it is


def _boundary(envelope_id: str) -> str:
    return f"mailroom-{envelope_id.replace('_', '-').lower()}"


def layout(envelope_id: str, body: str, parts: Sequence[AttachmentRow]) -> MimeLayout:
    return MimeLayout(
        _boundary(envelope_id),
        body or None,
        [MimePart(part.name, part.content_type, part.size) for part in parts],
    )


def rendering(envelope_id: str, body: str, parts: Sequence[AttachmentRow]) -> MeshRendering:
    if len(parts) == 1 and not body:
        only = parts[0]
        content_type = only.content_type if len(only.content_type) <= _CONTENT_TYPE_COLUMN else DEFAULT_TYPE
        return MeshRendering(only.name, content_type, only.size, composed=False)
    document = layout(envelope_id, body, parts)
    return MeshRendering(f"{envelope_id}.eml", document.content_type, document.size, composed=True)


def open_attachment(
    payloads: PayloadStore, row: AttachmentRow, start: int = 0, end: int | None = None
) -> Iterator[bytes]:
    """An attachment's bytes [start, end), from its row or the payload store (PayloadMissing
    if they are gone)."""
    if not row.payload_key:
        data = row.data or b""
        return iter((data[start:end],))
    if start == 0 and end is None:
        return payloads.open(row.payload_key)
    return payloads.open_range(row.payload_key, start, end)


def mesh_payload(
    payloads: PayloadStore, envelope_id: str, body: str, parts: Sequence[AttachmentRow]
) -> Iterator[bytes]:
    """A delivery's MESH payload, streamed."""
    if len(parts) == 1 and not body:
        return open_attachment(payloads, parts[0])
    document = layout(envelope_id, body, parts)
    return document.pieces(lambda index: open_attachment(payloads, parts[index]))
