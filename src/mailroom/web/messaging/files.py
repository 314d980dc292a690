"""``GET /files/{token}``: an attachment or receipt by a link Mailroom signed, no token needed
while the link lasts (``link_lifetime``). Streams the stored pieces (each read in a worker
thread while the one before is sent, ``web.streaming.read_in_turn``) and honours one
``Range: bytes=...`` (206, or 416 with ``Content-Range: bytes */size``). A ``Range`` this does
not take (several ranges, another unit, a malformed one) is ignored, as RFC 9110 allows: the
whole file, 200.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Header, Path
from fastapi.responses import StreamingResponse

from mailroom.services.messaging import FileBytes
from mailroom.web.messaging.auth import Messaging
from mailroom.web.messaging.errors import MftRoute
from mailroom.web.streaming import read_in_turn

router = APIRouter(route_class=MftRoute, tags=["JSON API: files"])

_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


def parse_range(header: str | None) -> tuple[int | None, int | None] | None:
    """(first, last) of a single ``bytes=first-last`` range (last inclusive; ``(None, n)`` the
    last n bytes), or None to send the whole file."""
    if not header:
        return None
    found = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if found is None or not (found[1] or found[2]):
        return None
    first = int(found[1]) if found[1] else None
    last = int(found[2]) if found[2] else None
    if first is not None and last is not None and last < first:
        return None  # invalid: ignored
    return first, last


def disposition(name: str) -> str:
    """``attachment`` with the name quoted for any client (RFC 6266 ``filename*``), never raw."""
    fallback = "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in name) or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def response_for(found: FileBytes, ranged: bool) -> StreamingResponse:
    headers = {
        "content-length": str(found.end - found.start),
        "accept-ranges": "bytes",
        "content-disposition": disposition(found.name),
        "cache-control": "private, no-store",
        "x-content-type-options": "nosniff",
    }
    status = 200
    if ranged:
        status = 206
        headers["content-range"] = f"bytes {found.start}-{found.end - 1}/{found.size}"
    return StreamingResponse(
        read_in_turn(found.pieces), status_code=status, headers=headers, media_type=found.content_type
    )


@router.get("/files/{token}", response_class=StreamingResponse)
async def download(
    token: Annotated[str, Path(max_length=4096)],
    service: Messaging,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> StreamingResponse:
    """A signed link's file; no ``Authorization`` needed."""
    wanted = parse_range(range_header)
    found = await anyio.to_thread.run_sync(service.open_link, token, wanted)
    return response_for(found, ranged=wanted is not None)
