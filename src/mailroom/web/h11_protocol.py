"""uvicorn's h11 protocol with the limits at the HTTP edge (``MAILROOM_HTTP_LAYER=uvicorn``).

h11 already bounds what it buffers of an incomplete event (``max_incomplete_event_size``, set
here to ``limits.head_bytes``) and already waits for a response before it parses a pipelined
request. What this adds, as ``web.edge`` describes: the status of a refusal (431, 414, 400; uvicorn
answers every parse error with 400), the URL, header-count and upgrade checks, the head, body
and keep-alive timers, ``Connection: close`` on an answer given while the client still waits for
a 100-continue, and a refusal that lingers so the client reads it.

It builds on uvicorn's ``H11Protocol`` (``data_received``, ``handle_events``, ``send_400_response``,
``conn``, ``cycle``, ``flow``, the keep-alive timer), so ``serve`` uses it only under the uvicorn
series it was tested with (``cli.main.http_protocol``); under another, the h11 layer is uvicorn's
own protocol with only the head size and keep-alive limits, given through uvicorn's options.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from mailroom.web.edge import (
    HEAD_TOO_LARGE,
    INVALID,
    TOO_MANY_HEADERS,
    UPGRADE_REFUSED,
    URL_TOO_LONG,
    EdgeLimits,
    EdgeTimers,
)

DEFAULT_LIMITS = EdgeLimits()


def refused_request(request: h11.Request, limits: EdgeLimits) -> tuple[int, str] | None:
    """Why a request head h11 has parsed is refused, if it is."""
    if request.method == b"CONNECT":
        return UPGRADE_REFUSED
    if len(request.target) > limits.url_bytes:
        return URL_TOO_LONG
    if len(request.headers) > limits.headers:
        return TOO_MANY_HEADERS
    size = len(request.target)
    for name, value in request.headers:
        if name == b"upgrade":
            return UPGRADE_REFUSED
        size += len(name) + len(value) + 4
    return HEAD_TOO_LARGE if size > limits.head_bytes else None


def url_too_long(pending: bytes, limits: EdgeLimits) -> bool:
    """Whether the start of a head h11 has not parsed yet already has too long a URL (h11
    parses a head only once all of it is in)."""
    line = pending.split(b"\n", 1)[0]
    start = line.find(b" ") + 1
    if not start:
        return len(line) > limits.url_bytes  # no method yet: a very long one
    end = line.rfind(b" ", start) if len(line) < len(pending) else -1
    return (len(line) if end < 0 else end) - start > limits.url_bytes


class _EdgeConnection(h11.Connection):
    """h11's server connection, which says why it refused, and closes after an answer given
    while the client still waits for its 100-continue (its body may never come, and the next
    request would be read as that body)."""

    def __init__(self, limits: EdgeLimits) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=limits.head_bytes)
        self.limits = limits
        self.refusal: tuple[int, str] | None = None

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            if self.refusal is None:
                self.refusal = HEAD_TOO_LARGE if exc.error_status_hint == 431 else INVALID
            raise
        if type(event) is h11.Request:
            self.refusal = refused_request(event, self.limits)
            if self.refusal is not None:
                raise h11.RemoteProtocolError(self.refusal[1], error_status_hint=self.refusal[0])
        return event

    def send(self, event: Any) -> Any:
        if type(event) is h11.Response and self.they_are_waiting_for_100_continue:
            headers = [*event.headers.raw_items(), (b"connection", b"close")]
            event = h11.Response(status_code=event.status_code, headers=headers, reason=event.reason)
        return super().send(event)


class EdgeH11Protocol(EdgeTimers, H11Protocol):
    """uvicorn's h11 protocol, with ``limits`` (``web.edge``)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: EdgeLimits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self.conn = self.edge_conn = _EdgeConnection(limits)
        self.timeout_keep_alive = limits.first_idle_check  # type: ignore[assignment]
        self.received = 0  # bytes read, as the body's progress

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, except that a read leaves the head's timer running (``web.edge``)."""
        if self.refused:  # read and dropped until the connection closes
            return
        self.received += len(data)
        self.conn.receive_data(data)
        self.handle_events()
        if self.refused:
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self.watch_body()
        elif state is h11.IDLE and url_too_long(self.conn.trailing_data[0], self.limits):
            self.refuse(*URL_TOO_LONG)
        elif (
            state is h11.IDLE
            and self.timeout_keep_alive_task is None
            and self.cycle is not None
            and self.cycle.response_complete
        ):  # answered before its body's end, which has now come: idle from here
            self.timeout_keep_alive_task = self.loop.call_later(
                self.limits.first_idle_check, self.timeout_keep_alive_handler
            )

    def send_400_response(self, msg: str) -> None:
        self.refuse(*(self.edge_conn.refusal or INVALID))

    # The edge (web.edge) --------------------------------------------------------------------

    def head_received(self) -> bool:
        return self.conn.their_state is h11.IDLE and bool(self.conn.trailing_data[0])

    def in_body(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY

    def body_progress(self) -> object:
        return self.received

    def held_back(self) -> bool:
        return self.flow.read_paused or self.conn.they_are_waiting_for_100_continue

    def refuse(self, status: int, reason: str) -> None:
        """Refuse, and read no more requests: now, or once a complete request before this
        point is answered (h11 parses no request before the one before it is answered, so this
        is for safety's sake)."""
        self.refused = True
        self.flow.resume_reading()  # what the client still sends is read and dropped
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.more_body:
            # the one running, whose own body is refused: it sees the client gone
            cycle.disconnected = True
            cycle.message_event.set()
        if cycle is None or cycle.response_complete or cycle.more_body:
            self.write_refusal(status, reason, self.server_state.default_headers)
            return
        answered = cycle.on_response

        def then_refuse() -> None:
            answered()
            self.write_refusal(status, reason, self.server_state.default_headers)

        cycle.on_response = then_refuse
