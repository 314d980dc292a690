"""uvicorn's httptools protocol with two fewer copies of every request body byte, and fewer writes.

On the benchmark machine a 1 GiB upload kept the event loop busier than the thread that hashes
and stores it, and a third of the loop's time went on copying the body four times: uvloop
copies each socket read into a new ``bytes``, httptools copies the body part of it into
another, and uvicorn (0.30 and later) appends each piece to a ``bytearray`` and hands the app
``bytes(...)`` of that. Here:

- the socket is read into a buffer of this module's (``asyncio.BufferedProtocol``), which
  httptools parses in place, so uvloop's copy goes;
- the body pieces httptools made are kept as they are, and the app gets the piece itself when
  one is waiting (the usual case: the app asks again as soon as it has one), so uvicorn's two
  copies go;
- writes made in one turn of the event loop go to the socket together (``writelines``), so a
  response's head and body, which uvicorn writes one after the other, cost one system call and
  one wake-up of the client instead of two.

Measured on the benchmark machine against uvicorn's stock protocol: a 1 GiB upload's share of
the pipeline floor (bench/floor.py) rose from 42-50% to 54-58%; small messages showed no
difference beyond the VM's noise (six alternating runs: 1.55 against 1.51 ms of server CPU per
message received, 0.97 against 0.97 sent, medians).

HTTP parsing, flow control (reading paused once more than uvicorn's high-water mark is waiting),
keep-alive, timeouts and shutdown are all uvicorn's own: ``HttpToolsProtocol`` does the work, and
this class only feeds it. The read buffer is shared by every connection on one event loop, which
is safe because httptools copies whatever it keeps before ``buffer_updated`` returns.
"""

from __future__ import annotations

import asyncio
import threading
from functools import partial
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from mailroom.web.direct_body import DIRECT_BODY, DirectBody

#: The newest uvicorn (major, minor) this module was tested with: it builds on uvicorn's internals
#: (``HttpToolsProtocol``'s parser callbacks, flow control and keep-alive timer, and the request
#: cycle's fields), so ``serve`` uses it only up to this version (``cli.main.http_protocol``).
TESTED_UVICORN = (0, 54)
#: Bytes read from a socket at once (uvloop's own read size).
READ_SIZE = 256 * 1024

_buffers = threading.local()


def _read_buffer() -> memoryview:
    """This thread's (so this event loop's) read buffer."""
    buffer: memoryview | None = getattr(_buffers, "view", None)
    if buffer is None:
        buffer = _buffers.view = memoryview(bytearray(READ_SIZE))
    return buffer


class BodyPieces:
    """What uvicorn's request cycle holds as ``body``; ``bytes()`` of one piece is that piece."""

    __slots__ = ("pieces", "size")

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.size = 0

    def __bytes__(self) -> bytes:
        if len(self.pieces) == 1:
            return self.pieces[0]
        return b"".join(self.pieces)

    def __len__(self) -> int:
        return self.size


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The one Content-Length of a request not sent in chunks, else None."""
    lengths = [value for name, value in headers if name == b"content-length"]
    if (
        len(lengths) != 1
        or not lengths[0].isdigit()
        or any(name == b"transfer-encoding" for name, _ in headers)
    ):
        return None
    return int(lengths[0])


class _HttpTools(HttpToolsProtocol):
    owner: MailroomHttpProtocol
    body_seen = 0  # bytes of the current request's body the parser has seen

    def on_headers_complete(self) -> None:
        cycle = self.cycle
        super().on_headers_complete()
        self.body_seen = 0
        if self.cycle is not cycle:  # a request the app will see (not an upgrade)
            extensions: dict[str, object] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
            # called (on the loop) by an endpoint that will store the body: MailroomHttpProtocol.divert
            extensions[DIRECT_BODY] = partial(self.owner.divert, self.cycle)

    def end_of_diverted_body(self) -> None:
        """The body went past the parser (``DirectBody``): a new parser for the next request,
        and the end of this one's body, as the old parser would have reported it."""
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn does
        self.on_message_complete()
        if self.cycle.response_complete and self.timeout_keep_alive_task is None:
            # answered before the body's end (and reads since then stopped the keep-alive timer)
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def _unsupported_upgrade_warning(self) -> None:
        """Nothing: an upgrade request is answered as plain HTTP (Mailroom serves no WebSockets),
        and uvicorn's two warnings for each would let any client fill the log at will."""

    def on_body(self, body: bytes) -> None:
        """uvicorn's ``on_body``, the piece kept rather than appended to a ``bytearray``."""
        self.body_seen += len(body)
        if (self.parser.should_upgrade() and self._should_upgrade()) or self.cycle.response_complete:
            return
        held: object = self.cycle.body
        if not isinstance(held, BodyPieces):  # uvicorn starts (and, once read, restarts) a bytearray
            started = bytes(self.cycle.body)
            held = BodyPieces()
            if started:
                held.pieces.append(started)
                held.size = len(started)
            self.cycle.body = held  # type: ignore[assignment]
        held.pieces.append(body)
        held.size += len(body)
        if held.size > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        self.cycle.message_event.set()


class _CoalescingTransport:
    """The transport as uvicorn sees it: writes made in one turn of the event loop reach the
    socket together, so a response's head and body (which uvicorn writes one after the other)
    cost one system call and one wake-up of the reader, not two."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.writelines(pending)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._flush()
        self._transport.set_protocol(protocol)


class MailroomHttpProtocol(asyncio.BufferedProtocol):
    """Reads into the loop's buffer and hands each read to uvicorn's httptools protocol, or,
    while an endpoint takes a body directly, into that body's pieces."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.http = _HttpTools(config, server_state, app_state, _loop)
        self.http.owner = self
        self._buffer = _read_buffer()
        self._direct: DirectBody | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        self.http.connection_made(_CoalescingTransport(transport, loop))  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._direct is not None:
            self._direct.lost()
            self._direct = None
        self.http.connection_lost(exc)

    def eof_received(self) -> None:
        self.http.eof_received()

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._direct is not None:
            return self._direct.space()
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        direct = self._direct
        if direct is None:
            self.http.data_received(self._buffer[:nbytes])  # type: ignore[arg-type]
            return
        self.http._unset_keepalive_if_required()
        direct.filled(nbytes)
        if not direct.reading:
            self._direct = None
            self.http.end_of_diverted_body()

    def divert(self, cycle: RequestResponseCycle) -> DirectBody | None:
        """The rest of ``cycle``'s body as a ``DirectBody``, or None where it cannot be had that
        way (sent in chunks, already answered, or the client gone)."""
        http = self.http
        length = _content_length(cycle.scope["headers"])  # type: ignore[arg-type]
        if length is None or self._direct is not None or cycle.disconnected or cycle.response_complete:
            return None
        held: object = cycle.body
        pieces = held.pieces if isinstance(held, BodyPieces) else [bytes(cycle.body)]
        cycle.body = bytearray()
        if cycle.waiting_for_100_continue and not http.transport.is_closing():
            http.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # as uvicorn's receive() would
            cycle.waiting_for_100_continue = False
        remaining = length - http.body_seen if cycle.more_body else 0
        direct = DirectBody(
            [piece for piece in pieces if piece],
            remaining,
            scratch=self._buffer,
            pause=http.flow.pause_reading,
            resume=http.flow.resume_reading,
        )
        if direct.reading:
            self._direct = direct
            http.flow.resume_reading()  # paused, perhaps, with the parser's pieces waiting
        return direct
