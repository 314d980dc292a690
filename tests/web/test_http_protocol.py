"""web/http_protocol.py: uvicorn's httptools protocol fed from a shared read buffer, bodies uncopied.

Served for real on loopback, on uvloop (what `mailroom serve` runs) and on asyncio's own loop,
to a small ASGI app that reports what it received.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
import click
import pytest
import uvicorn
import uvloop
from starlette.requests import ClientDisconnect
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from mailroom.cli.main import http_protocol
from mailroom.settings import HttpLayer, Settings
from mailroom.web.direct_body import DIRECT_BODY, PIECE
from mailroom.web.edge import EdgeLimits
from mailroom.web.h11_protocol import EdgeH11Protocol
from mailroom.web.http_protocol import (
    READ_SIZE,
    TESTED_UVICORN,
    BodyPieces,
    MailroomHttpProtocol,
    _CoalescingTransport,
)

Scope = dict[str, Any]


async def echo(scope: Scope, receive: Callable[[], Coroutine[Any, Any, Any]], send: Any) -> None:
    """Answers with the body's size, sha256 and how many pieces it came in."""
    if scope["type"] != "http":
        return
    digest, size, pieces = hashlib.sha256(), 0, 0
    while True:
        message = await receive()
        digest.update(message.get("body", b""))
        size += len(message.get("body", b""))
        pieces += 1
        if not message.get("more_body"):
            break
    body = json.dumps({"size": size, "sha256": digest.hexdigest(), "pieces": pieces}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


def _serve_and_talk(
    new_loop: Callable[[], asyncio.AbstractEventLoop], talk: Callable[[int], Any], app: Any = echo
) -> Any:
    """Serve ``app`` with MailroomHttpProtocol on a free port; run blocking ``talk(port)`` in a thread."""
    loop = new_loop()
    try:
        config = Config(app=app, http=MailroomHttpProtocol, ws="none", lifespan="off", log_level="warning")
        config.load()
        state = ServerState()

        async def main() -> Any:
            server = await loop.create_server(
                lambda: MailroomHttpProtocol(config, state, {}), host="127.0.0.1", port=0
            )
            port = server.sockets[0].getsockname()[1]
            try:
                return await asyncio.wait_for(loop.run_in_executor(None, talk, port), 30)
            finally:
                server.close()
                for connection in list(state.connections):
                    connection.shutdown()
                await server.wait_closed()

        return loop.run_until_complete(main())
    finally:
        loop.close()


LOOPS = [pytest.param(uvloop.new_event_loop, id="uvloop"), pytest.param(asyncio.new_event_loop, id="asyncio")]


def _responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, Any]]]:
    """``count`` responses (content-length bodies) read off ``sock``."""
    data, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            assert piece, "connection closed"
            data += piece
        head, data = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        length = next(int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length"))
        while len(data) < length:
            data += sock.recv(65536)
        body, data = data[:length], data[length:]
        out.append((int(lines[0].split()[1]), json.loads(body) if body.startswith(b"{") else {}))
    return out


def _post(body: bytes) -> bytes:
    return b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


@pytest.mark.parametrize("new_loop", LOOPS)
def test_pipelined_requests_in_one_read_are_each_answered(new_loop) -> None:
    bodies = [b"first", b"", b"third" * 1000]

    def talk(port: int) -> list[tuple[int, dict[str, Any]]]:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"".join(_post(body) for body in bodies))  # one write, one read
            return _responses(sock, len(bodies))

    answered = _serve_and_talk(new_loop, talk)
    assert [status for status, _ in answered] == [200, 200, 200]
    assert [body["size"] for _, body in answered] == [len(b) for b in bodies]
    assert [body["sha256"] for _, body in answered] == [hashlib.sha256(b).hexdigest() for b in bodies]


@pytest.mark.parametrize("new_loop", LOOPS)
def test_pipelined_requests_past_the_head_limit_in_one_read_are_each_answered(new_loop) -> None:
    # 300 heads of ~400 bytes: far more than a head may be (64 KiB) in one read, each one small
    bodies = [b"%d" % number for number in range(300)]
    padding = b"x-padding: " + b"p" * 330 + b"\r\n"

    def talk(port: int) -> list[tuple[int, dict[str, Any]]]:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"".join(_post(body).replace(b"host: t\r\n", b"host: t\r\n" + padding) for body in bodies)
            )
            return _responses(sock, len(bodies))

    answered = _serve_and_talk(new_loop, talk)
    assert [status for status, _ in answered] == [200] * len(bodies)
    assert [body["size"] for _, body in answered] == [len(b) for b in bodies]


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_head_over_the_limit_in_one_read_with_its_body_is_refused_431(new_loop) -> None:
    def talk(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            big = b"x-big: " + b"b" * (64 * 1024) + b"\r\n"
            sock.sendall(_post(b"body").replace(b"host: t\r\n", b"host: t\r\n" + big))
            reply = b""
            while piece := sock.recv(65536):
                reply += piece
            return reply

    reply = _serve_and_talk(new_loop, talk)
    assert reply.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert reply.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_body_many_reads_long_arrives_whole(new_loop) -> None:
    body = hashlib.sha256(b"seed").digest() * (5 * READ_SIZE // 32 + 7)  # several buffers' worth

    def talk(port: int) -> tuple[int, dict[str, Any]]:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            request = _post(body)
            for at in range(0, len(request), 100_000):  # in pieces that never line up with reads
                sock.sendall(request[at : at + 100_000])
            return _responses(sock, 1)[0]

    status, answer = _serve_and_talk(new_loop, talk)
    assert status == 200
    assert answer["size"] == len(body)
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_malformed_request_gets_400_and_the_connection_closes(new_loop) -> None:
    def talk(port: int) -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GARBAGE\x00 / HTTP/1.1\r\n\r\n")
            reply = b""
            while piece := sock.recv(65536):
                reply += piece
            return reply.split(b"\r\n", 1)[0], reply

    status_line, _ = _serve_and_talk(new_loop, talk)
    assert status_line == b"HTTP/1.1 400 Bad Request"


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_websocket_upgrade_is_refused_and_closed_and_logs_no_warning(new_loop, caplog) -> None:
    def talk(port: int) -> bytes:
        # uvicorn's loggers do not propagate, and its Config set them up anew: listen on its own
        logging.getLogger("uvicorn.error").addHandler(caplog.handler)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"GET /x HTTP/1.1\r\nhost: t\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
                b"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                + _post(b"smuggled")
            )
            reply = b""
            while piece := sock.recv(65536):
                reply += piece
            return reply

    try:
        reply = _serve_and_talk(new_loop, talk)
    finally:
        logging.getLogger("uvicorn.error").removeHandler(caplog.handler)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")  # not 101, and not the application's
    assert b"connection: close\r\n" in reply
    assert reply.count(b"HTTP/1.1") == 1  # the request behind it was never run
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


def test_one_waiting_piece_is_handed_over_uncopied() -> None:
    held = BodyPieces()
    piece = b"x" * 100_000
    held.pieces.append(piece)
    held.size = len(piece)
    assert bytes(held) is piece
    held.pieces.append(b"yz")
    held.size += 2
    assert bytes(held) == piece + b"yz"
    assert len(held) == len(piece) + 2


def test_serve_uses_it_under_the_tested_uvicorn_with_the_edge_limits_from_settings(monkeypatch) -> None:
    monkeypatch.setattr(uvicorn, "__version__", f"{TESTED_UVICORN[0]}.{TESTED_UVICORN[1]}.7")
    protocol = http_protocol(Settings(http_max_headers=7))
    assert protocol.func is MailroomHttpProtocol
    assert protocol.keywords["limits"] == EdgeLimits(headers=7)


@pytest.mark.parametrize("step", [+1, -1])
def test_serve_refuses_to_start_on_it_under_an_untested_uvicorn(monkeypatch, step) -> None:
    untested = f"{TESTED_UVICORN[0]}.{TESTED_UVICORN[1] + step}.0"
    monkeypatch.setattr(uvicorn, "__version__", untested)
    with pytest.raises(click.ClickException) as refused:
        http_protocol(Settings(http_layer=HttpLayer.MAILROOM))
    assert f"uvicorn {untested} is not the uvicorn" in refused.value.message
    assert "MAILROOM_HTTP_LAYER=uvicorn" in refused.value.message
    assert "constraints.txt" in refused.value.message


def test_the_uvicorn_layer_is_uvicorns_h11_protocol_with_the_edge_limits_under_the_tested_uvicorn(
    monkeypatch,
) -> None:
    monkeypatch.setattr(uvicorn, "__version__", f"{TESTED_UVICORN[0]}.{TESTED_UVICORN[1]}.1")
    protocol = http_protocol(Settings(http_layer=HttpLayer.UVICORN))
    assert protocol.func is EdgeH11Protocol
    assert issubclass(EdgeH11Protocol, H11Protocol)


def test_the_uvicorn_layer_is_uvicorns_own_h11_protocol_under_any_other_uvicorn(monkeypatch, capsys) -> None:
    monkeypatch.setattr(uvicorn, "__version__", "9.99.0")
    assert http_protocol(Settings(http_layer=HttpLayer.UVICORN)) == "h11"
    assert "only the head size and keep-alive limits" in capsys.readouterr().err


class _RecordingTransport:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.closing = False

    def writelines(self, pieces: list[bytes]) -> None:
        self.calls.append(("writelines", list(pieces)))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


def test_writes_in_one_turn_of_the_loop_go_out_together() -> None:
    async def main() -> list[tuple[str, object]]:
        recorded = _RecordingTransport()
        transport = _CoalescingTransport(recorded, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"body")
        assert recorded.calls == []  # nothing yet: the loop has not turned
        await asyncio.sleep(0)
        transport.write(b"next")
        transport.close()  # flushes what is pending first
        transport.write(b"late")
        await asyncio.sleep(0)  # a transport already closing gets nothing more
        return recorded.calls

    calls = asyncio.run(main())
    assert calls == [
        ("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b"body"]),
        ("writelines", [b"next"]),
        ("close", None),
    ]


# A body taken directly (web/direct_body.py) -----------------------------------------------------


class Store:
    """An app that takes each body directly where it can and hashes it in a worker thread, as
    the upload endpoints do; ``?stop=N`` gives up after N pieces. It records what its thread saw."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.done = threading.Event()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        stop = int(parse_qs(scope["query_string"].decode()).get("stop", ["0"])[0])
        divert = scope.get("extensions", {}).get(DIRECT_BODY)
        body = divert() if divert is not None else None
        if body is None:
            seen: dict[str, Any] = {"direct": False, **await self._received(receive)}
        else:
            try:
                seen = {"direct": True, **await anyio.to_thread.run_sync(self._consume, body, stop)}
            finally:
                body.close()
        self.seen.append(seen)
        self.done.set()
        reply = json.dumps(seen).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(reply))],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    @staticmethod
    def _consume(body: Any, stop: int) -> dict[str, Any]:
        digest, size, sizes = hashlib.sha256(), 0, []
        try:
            for piece in body:
                digest.update(piece)
                size += len(piece)
                sizes.append(len(piece))
                if stop and len(sizes) >= stop:
                    break
        except ClientDisconnect:
            return {"size": size, "disconnected": True}
        return {"size": size, "sha256": digest.hexdigest(), "sizes": sizes}

    @staticmethod
    async def _received(receive: Any) -> dict[str, Any]:
        digest, size = hashlib.sha256(), 0
        while True:
            message = await receive()
            digest.update(message.get("body", b""))
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                return {"size": size, "sha256": digest.hexdigest()}


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_body_taken_directly_arrives_whole_in_large_pieces_and_the_next_request_is_parsed(new_loop) -> None:
    big, small = os.urandom(2 * PIECE + 12_345), b"after"

    def talk(port: int) -> list[tuple[int, dict[str, Any]]]:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(_post(big) + _post(small))  # the second request right behind the body
            return _responses(sock, 2)

    (first_status, first), (second_status, second) = _serve_and_talk(new_loop, talk, Store())
    assert (first_status, second_status) == (200, 200)
    assert first["direct"]
    assert first["size"] == len(big)
    assert first["sha256"] == hashlib.sha256(big).hexdigest()
    # what the parser had already taken comes first, then pieces straight from the socket
    assert len(first["sizes"]) <= 7  # a few reads the parser took, then 1 MiB pieces
    assert PIECE in first["sizes"]
    assert second["direct"]
    assert second["sha256"] == hashlib.sha256(small).hexdigest()


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_body_taken_directly_answers_expect_100_continue_first(new_loop) -> None:
    body = os.urandom(PIECE + 1)

    def talk(port: int) -> tuple[bytes, tuple[int, dict[str, Any]]]:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /x HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: %d\r\n\r\n"
                % len(body)
            )
            interim = b""
            while not interim.endswith(b"\r\n\r\n"):
                interim += sock.recv(1)
            sock.sendall(body)
            return interim, _responses(sock, 1)[0]

    interim, (status, answer) = _serve_and_talk(new_loop, talk, Store())
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert status == 200
    assert answer["direct"]
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_client_gone_mid_body_ends_the_storing_thread(new_loop) -> None:
    store = Store()

    def talk(port: int) -> bool:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % (5 * PIECE))
            sock.sendall(os.urandom(PIECE + 100))
        return store.done.wait(10)

    assert _serve_and_talk(new_loop, talk, store)
    [seen] = store.seen
    assert seen["direct"]
    assert seen["disconnected"]  # after what had arrived whole (a piece cut short is not handed over)
    assert seen["size"] <= PIECE + 100


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_body_given_up_early_is_read_to_its_end_and_dropped(new_loop) -> None:
    big, small = os.urandom(3 * PIECE), os.urandom(1000)

    def talk(port: int) -> list[tuple[int, dict[str, Any]]]:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = b"POST /x?stop=1 HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % len(big)
            sock.sendall(head + big + _post(small))
            return _responses(sock, 2)

    (first_status, first), (second_status, second) = _serve_and_talk(new_loop, talk, Store())
    assert first_status == 200
    assert len(first["sizes"]) == 1
    assert second_status == 200
    assert second["sha256"] == hashlib.sha256(small).hexdigest()


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_body_sent_in_chunks_is_not_taken_directly(new_loop) -> None:
    def talk(port: int) -> tuple[int, dict[str, Any]]:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /x HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            )
            return _responses(sock, 1)[0]

    status, answer = _serve_and_talk(new_loop, talk, Store())
    assert status == 200
    assert not answer["direct"]
    assert answer["size"] == 5
