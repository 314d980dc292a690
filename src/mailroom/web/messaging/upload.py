"""Attachments streamed from a request body into storage while the body arrives.

A raw body is one attachment; a ``multipart/form-data`` body holds one per file part. Either
way a worker thread of the upload slots (``web.uploads``, which the MESH face uses too: the
same per-mailbox fairness, the body straight from the socket under ``mailroom serve`` or read
ahead on the loop otherwise) hands each attachment's pieces to ``stage_attachment`` as they come,
so memory stays a few pieces whatever the size. Attachments staged before a later part is
refused are left unused, and removed after ``staged_attachment_retention``.

The multipart parser is ``web.messaging.multipart`` (``read_parts``); ``_form_files`` is the one
place that knows its parts' shape, and ``file_name_ok`` its rule for client file names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from starlette.requests import Request

from mailroom import errors
from mailroom.domain.envelopes import AttachmentInfo
from mailroom.services.api_tokens import ApiPrincipal
from mailroom.services.messaging import MessagingService
from mailroom.settings import Settings
from mailroom.web import uploads
from mailroom.web.messaging import multipart
from mailroom.web.messaging.multipart import file_name_ok, is_form_data

DEFAULT_NAME = "attachment.dat"
DEFAULT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class FileSource:
    """One attachment as it arrives: its checked name and type, and its content."""

    name: str
    content_type: str
    pieces: Iterator[bytes]


def _form_files(content_type: str, body: Iterable[bytes], settings: Settings) -> Iterator[FileSource]:
    """The file parts of a form body, in order; plain fields are read past."""
    limits = multipart.MultipartLimits.from_settings(settings)
    for part in multipart.read_parts(multipart.boundary_of(content_type), body, limits):
        if part.filename is None:
            part.skip()
            continue
        yield FileSource(part.filename, part.content_type or DEFAULT_TYPE, part.pieces)


def raw_source(name: str | None, content_type: str | None, body: Iterable[bytes]) -> FileSource:
    return FileSource(
        file_name_ok(name) if name else DEFAULT_NAME,
        (content_type or "").strip() or DEFAULT_TYPE,
        iter(body),
    )


def _stage_all(
    service: MessagingService,
    principal: ApiPrincipal,
    settings: Settings,
    content_type: str | None,
    name: str | None,
    most: int,
    body: Iterable[bytes],
) -> list[AttachmentInfo]:
    """In the upload thread: every attachment of the body, staged in turn."""
    if not is_form_data(content_type):
        source = raw_source(name, content_type, body)
        return [service.stage_attachment(principal, source.name, source.content_type, source.pieces)]
    staged: list[AttachmentInfo] = []
    for source in _form_files(content_type or "", body, settings):
        if len(staged) >= most:
            raise errors.ValidationFailed("body", "file", f"At most {most} file(s) in one upload")
        staged.append(service.stage_attachment(principal, source.name, source.content_type, source.pieces))
    if not staged:
        raise errors.ValidationFailed("body", "file", "The form has no file part")
    return staged


async def stage_body(
    request: Request,
    service: MessagingService,
    principal: ApiPrincipal,
    *,
    name: str | None,
    most: int,
) -> list[AttachmentInfo]:
    """Stage the request body's attachments (at most ``most``) while it streams in."""
    if principal.read_only:  # before a byte of the body is read
        raise errors.PermissionDenied("This token is read-only")
    settings: Settings = request.app.state.container.settings
    content_type = request.headers.get("content-type")
    if name is not None:
        name = file_name_ok(name)  # refused before the body is read
    return await uploads.store_streamed(
        request,
        principal.mailbox_id,
        _stage_all,
        service,
        principal,
        settings,
        content_type,
        name,
        most,
    )
