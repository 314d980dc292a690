"""``multipart/form-data`` uploads read part by part while they stream, for the JSON messaging API.

MFT Gateway's ``POST /message/submit`` takes one attachment per part and ``POST /2/attachments``
one file; either may be a gigabyte, so no part is ever held whole. ``python_multipart``'s push
parser (the one Starlette uses) does the byte work; this module pulls: :func:`read_parts` takes
the body's pieces one at a time (a worker thread's iterator over the socket: ``web.streaming``),
feeds each to the parser, and hands the parts out in order, each with an iterator over its
content that reads the body only as far as the consumer has got. The consumer reads a part to
its end, or calls :meth:`FormPart.skip`, before it asks for the next one, so at most about two
body pieces are held here whatever the sizes.

Every refusal is a domain error, so each face renders it in its own shape: a body that is not
well-formed multipart is :class:`~mailroom.errors.ValidationFailed` (``location="body"``), a
limit passed is :class:`~mailroom.errors.PayloadTooLarge` naming the limit. A body that ends
early (the client went away) makes a part's content iterator raise instead of ending, so a
consumer storing it keeps nothing partial: whatever the body iterator raised (Starlette's
``ClientDisconnect``), or ``ValidationFailed`` when it just stopped.

A face drives it from the thread that stores the parts, for instance::

    boundary = boundary_of(request.headers.get("content-type"))  # before reading the body
    async with read_ahead(request.stream()) as body:  # web.streaming
        def store() -> None:
            for part in read_parts(boundary, body, MultipartLimits.from_settings(settings)):
                if part.is_file:
                    stage(part.filename, part.content_type, part.pieces)  # reads it to its end
                else:
                    fields[part.name] = part.value
        await anyio.to_thread.run_sync(store)
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from mailroom import errors
from mailroom.settings import Settings

#: RFC 2046 §5.1.1: 1 to 70 characters, from this set, not ending in a space.
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
#: Longest file name kept (most filesystems' limit, should the name ever leave as one).
MAX_FILE_NAME = 255
#: Longest part Content-Type kept (the attachments table's column).
MAX_CONTENT_TYPE = 200
#: Characters refused in a file name besides the control characters (Unicode category Cc):
#: the bidirectional overrides and marks that make ``txt.exe`` read as ``exe.txt``, and
#: the line and paragraph separators.
_SPOOFING = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")
_DRIVE = re.compile(r"^[A-Za-z]:")
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})


class _QuietParserLog(logging.LoggerAdapter[logging.Logger]):
    """The parser logs a WARNING for each malformed body; the client is told already (the
    refusal), so a server's log would gain only a line per bad request: DEBUG here instead."""

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


_PARSER_LOG = _QuietParserLog(logging.getLogger(__name__), {})


@dataclass(frozen=True)
class MultipartLimits:
    """What one ``multipart/form-data`` body may hold; each limit passed is a 413."""

    max_parts: int = 100
    max_part_bytes: int = 100 * 1024**3  # one file part's content
    max_header_bytes: int = 16 * 1024  # one part's header lines together
    max_total_bytes: int = 100 * 1024**3  # the whole body, boundaries and all
    max_field_bytes: int = 64 * 1024  # a plain (non-file) field's value, held in memory

    @classmethod
    def from_settings(cls, settings: Settings) -> MultipartLimits:
        """The ``multipart_*`` settings, their 0 defaults worked out from ``max_message_bytes``."""
        return cls(
            max_parts=settings.multipart_max_parts,
            max_part_bytes=settings.multipart_max_part_bytes or settings.max_message_bytes,
            max_header_bytes=settings.multipart_max_header_bytes,
            max_total_bytes=settings.multipart_max_total_bytes or settings.max_message_bytes,
        )


@dataclass(frozen=True, eq=False)
class FormPart:
    """One part of a form, handed out while the body streams.

    ``filename`` is None for a plain field, whose text is then ``value`` (read whole, at most
    ``max_field_bytes``, UTF-8); for a file it has passed :func:`file_name_ok`. ``pieces`` gives
    the content as it arrives: read it to its end, or :meth:`skip` it, before asking for the next
    part. It raises, rather than ending, when the body breaks off inside the part.
    """

    name: str
    filename: str | None
    content_type: str
    pieces: Iterator[bytes]
    value: str | None = field(default=None)

    @property
    def is_file(self) -> bool:
        return self.filename is not None

    def skip(self) -> None:
        """Read past what is left of this part's content, keeping none of it."""
        for _ in self.pieces:
            pass


def is_form_data(content_type: str | None) -> bool:
    """Whether a request's Content-Type is ``multipart/form-data`` (any parameters)."""
    return _options(content_type)[0] == b"multipart/form-data"


def _options(header: str | None) -> tuple[bytes, dict[bytes, bytes]]:
    """``parse_options_header``, refusing (not failing on) text no HTTP header holds."""
    try:
        return parse_options_header(header)
    except UnicodeEncodeError:  # past Latin-1: only from a caller, never from the wire
        raise _header_error("the Content-Type has characters no HTTP header holds") from None


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type, refused when it is missing or
    breaks RFC 2046 (over 70 characters, characters outside its set)."""
    media, options = _options(content_type)
    if media != b"multipart/form-data":
        raise _header_error("the body must be multipart/form-data")
    return _checked_boundary(options.get(b"boundary", b""))


def _checked_boundary(boundary: bytes) -> bytes:
    if not boundary:
        raise _header_error("multipart/form-data without a boundary")
    if len(boundary) > 70:
        raise _header_error("the multipart boundary is longer than 70 characters")
    if not _BOUNDARY.fullmatch(boundary):
        raise _header_error("the multipart boundary has characters RFC 2046 does not allow")
    return boundary


def read_parts(boundary: bytes, body: Iterable[bytes], limits: MultipartLimits) -> Iterator[FormPart]:
    """The parts of a ``multipart/form-data`` body, one at a time, as ``body``'s pieces arrive.

    ``body`` yields bytes-like pieces (each may be reused by its producer once the next is asked
    for: what is kept is copied). Ends after the final boundary, once the rest of the body (an
    epilogue, normally nothing) is read.
    """
    return _Reader(boundary, body, limits).parts()


def file_name_ok(name: str) -> str:
    """A client's file name, fit to keep as metadata (never as a path): its last component,
    ``/`` and ``\\`` both separating, and any drive letter dropped. Refused when that is empty
    (or only dots and spaces), longer than 255 characters, or when the name has a NUL, a control
    character or a character that reorders text."""
    if any(unicodedata.category(c) in ("Cc", "Cs") or c in _SPOOFING for c in name):
        raise _name_error("the file name has control characters")
    base = _DRIVE.sub("", re.split(r"[/\\]", name)[-1])
    if not base.strip(" ."):
        raise _name_error("the file name is empty")
    if len(base) > MAX_FILE_NAME:
        raise _name_error(f"the file name is longer than {MAX_FILE_NAME} characters")
    return base


def _header_error(msg: str) -> errors.ValidationFailed:
    return errors.ValidationFailed(location="header", name="Content-Type", msg=msg)


def _name_error(msg: str) -> errors.ValidationFailed:
    return errors.ValidationFailed(location="body", name="filename", msg=msg)


def _body_error(msg: str, name: str = "multipart") -> errors.ValidationFailed:
    return errors.ValidationFailed(location="body", name=name, msg=msg)


class _Mark:
    """The ends the parser finds, in the queue: of a part, of the body."""


_PART_END = _Mark()
_BODY_END = _Mark()


@dataclass(frozen=True)
class _Headers:
    lines: list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class _Failure:
    error: Exception


_Event = bytes | _Headers | _Mark | _Failure


class _Reader:
    """Pulls body pieces through the push parser, whose callbacks queue what they found.

    An error met inside the parser (a callback's limit, a malformed byte) is queued after what
    came before it, so a part that ended whole is still handed out whole; once raised, an error
    is raised again to whoever asks.
    """

    def __init__(self, boundary: bytes, body: Iterable[bytes], limits: MultipartLimits) -> None:
        boundary = _checked_boundary(boundary)
        self._body = iter(body)
        self._limits = limits
        self._events: deque[_Event] = deque()
        self._failure: Exception | None = None
        self._total = 0
        self._parts = 0
        self._header_bytes = 0
        self._part_bytes = 0
        self._lines: list[tuple[bytes, bytes]] = []
        self._field = bytearray()
        self._value = bytearray()
        self._in_part = ""  # the name of the part whose content is being read, for errors
        self._open = False  # a part handed out whose content is not yet read to its end
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
            # The parser's own header limits would refuse as malformed (and before the bytes
            # reach a callback); ours apply instead (the callbacks, as the bytes arrive: at most
            # one body piece is looked at past the limit).
            max_header_count=limits.max_total_bytes,
            max_header_size=limits.max_total_bytes,
        )
        self._parser.logger = _PARSER_LOG  # type: ignore[assignment]

    # -- the consumer's side --

    def parts(self) -> Iterator[FormPart]:
        while (headers := self._next()) is not _BODY_END:
            if not isinstance(headers, _Headers):  # pragma: no cover - the parser's order
                raise self._fail(_body_error("part content before its headers"))
            part = self._start(headers.lines)
            if part.filename is None:
                yield part
                continue
            self._open = True
            yield part
            if self._open and self._failure is None:
                raise RuntimeError("a part's content must be read to its end or skipped before the next")
            if self._failure is not None:
                raise self._failure
        self._read_epilogue()

    def _content(self, name: str) -> Iterator[bytes]:
        self._in_part = name
        while (event := self._next()) is not _PART_END:
            if isinstance(event, bytes):
                yield event
        self._open = False
        self._in_part = ""

    def _field_value(self, name: str) -> str:
        self._in_part = name
        value = bytearray()
        while (event := self._next()) is not _PART_END:
            if isinstance(event, bytes):
                value += event
                if len(value) > self._limits.max_field_bytes:
                    raise self._fail(
                        errors.PayloadTooLarge(
                            f"Form field '{name}' is longer than {self._limits.max_field_bytes} bytes"
                        )
                    )
        self._in_part = ""
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail(_body_error(f"form field '{name}' is not UTF-8 text", name)) from None

    def _start(self, lines: list[tuple[bytes, bytes]]) -> FormPart:
        try:
            name, filename, content_type = _part_headers(lines)
        except errors.MailroomError as exc:
            raise self._fail(exc) from None
        if filename is None:
            value = self._field_value(name)
            data = value.encode("utf-8")
            return FormPart(name, None, content_type or "text/plain", iter((data,) if data else ()), value)
        return FormPart(name, filename, content_type or "application/octet-stream", self._content(name))

    def _read_epilogue(self) -> None:
        for piece in self._body:
            self._count(len(piece))

    def _fail(self, error: Exception) -> Exception:
        self._failure = error
        return error

    def _next(self) -> _Event:
        if self._failure is not None:
            raise self._failure
        while not self._events:
            self._feed()
        event = self._events.popleft()
        if isinstance(event, _Failure):
            raise self._fail(event.error)
        return event

    def _feed(self) -> None:
        try:
            piece = next(self._body)
        except StopIteration:
            where = f" inside part '{self._in_part}'" if self._in_part else ""
            error = _body_error(f"the body ends{where} before the final multipart boundary")
            self._events.append(_Failure(error))
            return
        except Exception as exc:  # the client went away: the consumer hears of it as it is
            self._events.append(_Failure(exc))
            return
        try:
            self._count(len(piece))
            self._parser.write(piece if isinstance(piece, bytes) else bytes(piece))
        except errors.MailroomError as exc:
            self._events.append(_Failure(exc))
        except FormParserError as exc:
            self._events.append(
                _Failure(_body_error(f"the body is not well-formed multipart/form-data: {exc}"))
            )

    def _count(self, size: int) -> None:
        self._total += size
        if self._total > self._limits.max_total_bytes:
            raise errors.PayloadTooLarge(
                f"The multipart body is larger than {self._limits.max_total_bytes} bytes"
            )

    # -- the parser's callbacks --

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > self._limits.max_parts:
            raise errors.PayloadTooLarge(f"The multipart body has more than {self._limits.max_parts} parts")
        self._header_bytes = self._part_bytes = 0
        self._lines = []

    def _add_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self._limits.max_header_bytes:
            raise errors.PayloadTooLarge(
                f"A multipart part's headers are larger than {self._limits.max_header_bytes} bytes"
            )

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._add_header_bytes(end - start)
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._add_header_bytes(end - start)
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._add_header_bytes(4)  # ": " and CRLF, roughly: the line as sent
        self._lines.append((bytes(self._field), bytes(self._value)))
        self._field.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        self._events.append(_Headers(self._lines))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._part_bytes += end - start
        if self._part_bytes > self._limits.max_part_bytes:
            raise errors.PayloadTooLarge(
                f"A multipart part is larger than {self._limits.max_part_bytes} bytes"
            )
        self._events.append(data[start:end])

    def _on_part_end(self) -> None:
        self._events.append(_PART_END)

    def _on_end(self) -> None:
        self._events.append(_BODY_END)


def _part_headers(lines: list[tuple[bytes, bytes]]) -> tuple[str, str | None, str]:
    """(name, file name or None, Content-Type or "") from one part's header lines."""
    found: dict[str, str] = {}
    for raw_name, raw_value in lines:
        key = raw_name.decode("latin-1").strip().lower()
        if key in found:
            raise _body_error(f"a multipart part has two {raw_name.decode('latin-1')} headers")
        found[key] = raw_value.decode("latin-1").strip()
    encoding = found.get("content-transfer-encoding", "binary").lower()
    if encoding not in _IDENTITY_ENCODINGS:
        raise _body_error(f"multipart parts may not use Content-Transfer-Encoding {encoding}")
    name, filename = _disposition(found.get("content-disposition"))
    return name, filename, _part_content_type(found.get("content-type", ""), name)


def _disposition(header: str | None) -> tuple[str, str | None]:
    if header is None:
        raise _body_error("a multipart part has no Content-Disposition header")
    kind, options = parse_options_header(header)
    if kind != b"form-data":
        raise _body_error("a multipart part's Content-Disposition is not form-data")
    raw_name = options.get(b"name")
    if not raw_name:
        raise _body_error("a multipart part's Content-Disposition has no name")
    name = _text(raw_name)
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise _body_error("a multipart part's name has control characters")
    raw_filename = options.get(b"filename")
    return name, None if raw_filename is None else file_name_ok(_text(raw_filename))


def _part_content_type(value: str, name: str) -> str:
    if len(value) > MAX_CONTENT_TYPE:
        raise _body_error(f"part '{name}' has a Content-Type longer than {MAX_CONTENT_TYPE} characters", name)
    if value and not re.fullmatch(r"[!-~]+/[!-~][ -~]*", value):
        raise _body_error(f"part '{name}' has a Content-Type that is not a media type", name)
    return value


def _text(raw: bytes) -> str:
    """A header parameter as sent: UTF-8 (what browsers send) where it decodes, else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
