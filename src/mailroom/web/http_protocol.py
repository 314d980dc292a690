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

HTTP parsing, flow control (reading paused once more than uvicorn's high-water mark is waiting)
and shutdown are uvicorn's: ``HttpToolsProtocol`` does the work, and this class feeds it. The
limits at the edge (``web.edge``) are counted on the way: the head is fed to the parser only up
to ``limits.head_bytes`` (a read that would pass it is fed in two), the URL and the header count
in the parser callbacks; uvicorn's keep-alive timer also times the next head, and a body gets a
timer only when a read ends with some of it still to come, so a small request costs a few
counters and comparisons more than it did, and no more timers.

The read buffer is shared by every connection on one event loop, which is safe because
httptools copies whatever it keeps before ``buffer_updated`` returns.
"""

from __future__ import annotations

import asyncio
import threading
from functools import partial
from typing import Any, NoReturn

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from mailroom.web.direct_body import DIRECT_BODY, DirectBody
from mailroom.web.edge import (
    HEAD_TOO_LARGE,
    INVALID,
    TOO_MANY_HEADERS,
    UPGRADE_REFUSED,
    URL_TOO_LONG,
    EdgeLimits,
    EdgeTimers,
)
from mailroom.web.edge import TESTED_UVICORN as TESTED_UVICORN  # builds on uvicorn's internals

#: Bytes read from a socket at once (uvloop's own read size).
READ_SIZE = 256 * 1024

DEFAULT_LIMITS = EdgeLimits()

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


class _Refused(Exception):
    """Raised in a parser callback to stop parsing at once (the refusal is on the protocol)."""


class _ExpectingCycle(RequestResponseCycle):
    """A request that asked for ``Expect: 100-continue``: answered before its body was asked
    for, the connection closes after the answer (``Connection: close``), since the client may
    never send that body and its next request would be read as it."""

    async def send(self, message: Any) -> None:
        if self.waiting_for_100_continue and self.more_body and not self.response_started:
            self.keep_alive = False
        await super().send(message)


class _HttpTools(EdgeTimers, HttpToolsProtocol):
    """uvicorn's httptools protocol with the edge's limits (``web.edge``) and bodies kept in pieces."""

    owner: MailroomHttpProtocol
    body_seen = 0  # bytes of the current request's body the parser has seen
    head_seen = 0  # bytes fed to the parser since the last head or body ended
    in_head = True  # the parser is between requests or in a head (not in a body)
    refusal: tuple[int, str] | None = None  # why a parser callback stopped the parser
    previous: RequestResponseCycle | None = None  # the request before ``cycle``

    # Reading -------------------------------------------------------------------------------

    def data_received(self, data: memoryview) -> None:  # type: ignore[override]
        """Feed the parser, a head never past ``limits.head_bytes``; refuse what it refuses."""
        if self.refused:  # read and dropped until the connection closes
            return
        try:
            while self.in_head:
                room = self.limits.head_bytes - self.head_seen
                if len(data) <= room:
                    self.head_seen += len(data)
                    break
                self.head_seen = self.limits.head_bytes
                self.parser.feed_data(data[:room])
                if self.head_seen:  # no head ended in those bytes (that sets it to 0)
                    raise _Refused
                data = data[room:]
            self.parser.feed_data(data)
        except _Refused:
            self.refuse(*HEAD_TOO_LARGE)
            return
        except httptools.HttpParserError:
            self.refuse(*(self.refusal or INVALID))
            return
        except httptools.HttpParserUpgrade:  # CONNECT without a head check (there is one)
            self.refuse(*UPGRADE_REFUSED)
            return
        if not self.in_head and self._body_task is None:
            self.watch_body()

    def _refusing(self, why: tuple[int, str]) -> NoReturn:
        self.refusal = why
        raise _Refused

    # Parser callbacks (uvicorn's, with the edge's counts) -----------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.url_bytes:
            self._refusing(URL_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        elif name == b"upgrade":
            self._refusing(UPGRADE_REFUSED)
        self.headers.append((name, value))
        if len(self.headers) > self.limits.headers:
            self._refusing(TOO_MANY_HEADERS)

    def on_headers_complete(self) -> None:
        if self.parser.should_upgrade():  # CONNECT
            self._refusing(UPGRADE_REFUSED)
        task = self.timeout_keep_alive_task  # the head's timer
        if task is not None:
            task.cancel()
            self.timeout_keep_alive_task = None
        self.previous = self.cycle
        super().on_headers_complete()
        self.in_head = False
        self.head_seen = self.body_seen = 0
        cycle = self.cycle
        if cycle.waiting_for_100_continue:
            cycle.__class__ = _ExpectingCycle
        extensions: dict[str, object] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
        # called (on the loop) by an endpoint that will store the body: MailroomHttpProtocol.divert
        extensions[DIRECT_BODY] = partial(self.owner.divert, cycle)

    def on_body(self, body: bytes) -> None:
        """uvicorn's ``on_body``, the piece kept rather than appended to a ``bytearray``."""
        self.body_seen += len(body)
        if self.cycle.response_complete:
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

    def on_message_complete(self) -> None:
        self.in_head = True
        self.head_seen = 0
        cycle = self.cycle
        if not cycle.response_complete:
            cycle.more_body = False
            cycle.message_event.set()
        elif self.timeout_keep_alive_task is None and not self.refused:
            # answered before the body's end: the idle timer the answer armed may have passed
            self.timeout_keep_alive_task = self.loop.call_later(
                self.limits.first_idle_check, self.timeout_keep_alive_handler
            )

    def end_of_diverted_body(self) -> None:
        """The body went past the parser (``DirectBody``): a new parser for the next request,
        and the end of this one's body, as the old parser would have reported it."""
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn does
        self.on_message_complete()

    # The edge (web.edge) --------------------------------------------------------------------

    def head_received(self) -> bool:
        return self.in_head and self.head_seen > 0

    def in_body(self) -> bool:
        return not self.in_head

    def body_progress(self) -> object:
        direct = self.owner._direct
        return (self.cycle, self.body_seen if direct is None else -direct.remaining)

    def held_back(self) -> bool:
        return self.flow.read_paused or self.cycle.waiting_for_100_continue

    def refuse(self, status: int, reason: str) -> None:
        """Refuse, and read no more requests: now, or once every complete request before
        this point is answered (a parse error must not cost a request already made its answer)."""
        self.refused = True
        self.flow.resume_reading()  # what the client still sends is read and dropped
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.more_body:
            # this request's own head or body is what is refused: it is never answered
            if self.pipeline and self.pipeline[0][0] is cycle:
                self.pipeline.popleft()
                cycle = self.previous
            else:  # the one running: it sees the client gone, and what it sends is dropped
                cycle.disconnected = True
                cycle.message_event.set()
                cycle = None
        if cycle is None or cycle.response_complete:
            self.write_refusal(status, reason, self.server_state.default_headers)
        else:
            cycle.on_response = partial(self._answered_then_refuse, status, reason)

    def _answered_then_refuse(self, status: int, reason: str) -> None:
        self.on_response_complete()
        self.write_refusal(status, reason, self.server_state.default_headers)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_timers()
        super().connection_lost(exc)


class _CoalescingTransport:
    """The transport as uvicorn sees it: writes made in one turn of the event loop reach the
    socket together, so a response's head and body (which uvicorn writes one after the other)
    cost one system call and one wake-up of the reader, not two."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._ended = False  # write_eof was called: nothing more can be written

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._ended and not self._transport.is_closing():
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

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self._flush()
        self._ended = True
        self._transport.write_eof()

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
        *,
        limits: EdgeLimits = DEFAULT_LIMITS,
    ) -> None:
        self.http = _HttpTools(config, server_state, app_state, _loop)
        self.http.owner = self
        self.http.limits = limits
        self.http.timeout_keep_alive = limits.first_idle_check  # type: ignore[assignment]
        self._buffer = _read_buffer()
        self._direct: DirectBody | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        self.http.connection_made(_CoalescingTransport(transport, loop))  # type: ignore[arg-type]
        self.http.arm_head_timer()

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
            self.http.data_received(self._buffer[:nbytes])
            return
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
