"""The benchmark's large-message client (bench/bulk.py) and its pipeline floor (bench/floor.py).

The large-message figures in docs/performance.md are only as good as these two: the client must
send and receive every byte and compare checksums, and the floor must do the same durable work
a real server does (payload fsynced and renamed into place before its 202).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench import bulk
from bench.loadgen import ProtocolError, Target
from bench.servers import SENDER, Floor, Mailroom, Server
from tests.support.server import free_port

MIB = 1024 * 1024


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    server.prepare()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _transfer(server: Server) -> bulk.LargeResult:
    # three chunks, the last a partial one, each larger than one 1 MiB block of the client
    return bulk.large_transfer(server.target, SENDER, "BOB00", 5 * MIB + 123, 2 * MIB)


def test_a_large_message_goes_through_mailroom_and_comes_back_whole(tmp_path: Path) -> None:
    with running(Mailroom(tmp_path / "mailroom", free_port(), receivers=1)) as server:
        result = _transfer(server)
        conn = bulk.BulkConnection(server.target)
        status, listed = conn.request("GET", "/messageexchange/BOB00/inbox", "BOB00")
        conn.close()
    assert result.sha256_up == result.sha256_down
    assert status == 200
    assert json.loads(listed)["messages"] == []  # downloaded and acknowledged


def test_the_floor_stores_every_chunk_durably_and_serves_it_back(tmp_path: Path) -> None:
    with running(Floor(tmp_path / "floor", free_port(), receivers=1)) as floor:
        result = _transfer(floor)
    assert result.sha256_up == result.sha256_down
    stored = sorted((tmp_path / "floor" / "payloads").iterdir())
    assert [p.name for p in stored] == [f"{result.message_id}_{n}" for n in (1, 2, 3)]
    assert [p.stat().st_size for p in stored] == [2 * MIB, 2 * MIB, MIB + 123]
    whole = hashlib.sha256(b"".join(p.read_bytes() for p in stored)).hexdigest()
    assert whole == result.sha256_up


def _serve_once(listener: socket.socket, response: bytes) -> None:
    conn, _ = listener.accept()
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(65536)
        conn.sendall(response)


@pytest.fixture
def canned() -> tuple[socket.socket, Target]:
    listener = socket.create_server(("127.0.0.1", 0))
    return listener, Target("127.0.0.1", listener.getsockname()[1], "key", "password")


def test_the_client_reads_a_chunked_response_body(canned: tuple[socket.socket, Target]) -> None:
    listener, target = canned
    body = b"x" * 70_000 + b"end"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:5], body[5:]))
    response = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    thread = threading.Thread(target=_serve_once, args=(listener, response))
    thread.start()
    received: list[bytes] = []
    conn = bulk.BulkConnection(target)
    status, _ = conn.request("GET", "/x", "ALICE", sink=lambda piece: received.append(bytes(piece)))
    conn.close()
    thread.join()
    listener.close()
    assert status == 200
    assert b"".join(received) == body


def test_the_client_refuses_a_body_cut_short(canned: tuple[socket.socket, Target]) -> None:
    listener, target = canned
    thread = threading.Thread(
        target=_serve_once, args=(listener, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort")
    )
    thread.start()
    conn = bulk.BulkConnection(target)
    with pytest.raises(ProtocolError):
        conn.request("GET", "/x", "ALICE", sink=lambda piece: None)
    conn.close()
    thread.join()
    listener.close()
