"""web/http_protocol.py: uvicorn's httptools protocol fed from a shared read buffer, bodies uncopied.

Served for real on loopback, on uvloop (what `mailroom serve` runs) and on asyncio's own loop,
to a small ASGI app that reports what it received.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop
from uvicorn.config import Config
from uvicorn.server import ServerState

from mailroom.cli.main import http_protocol
from mailroom.web.http_protocol import READ_SIZE, BodyPieces, MailroomHttpProtocol, _CoalescingTransport

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


def _serve_and_talk(new_loop: Callable[[], asyncio.AbstractEventLoop], talk: Callable[[int], Any]) -> Any:
    """Serve ``echo`` with MailroomHttpProtocol on a free port; run blocking ``talk(port)`` in a thread."""
    loop = new_loop()
    try:
        config = Config(app=echo, http=MailroomHttpProtocol, ws="none", lifespan="off", log_level="warning")
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
def test_a_websocket_upgrade_is_answered_as_plain_http(new_loop) -> None:
    def talk(port: int) -> tuple[int, dict[str, Any]]:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"GET /x HTTP/1.1\r\nhost: t\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
                b"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            return _responses(sock, 1)[0]

    status, answer = _serve_and_talk(new_loop, talk)
    assert status == 200  # the application's answer, not 101 Switching Protocols
    assert answer["size"] == 0


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


def test_serve_uses_it() -> None:
    assert http_protocol() is MailroomHttpProtocol


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
