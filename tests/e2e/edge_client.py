"""Raw-socket helpers for the HTTP edge tests: what a hostile or broken client sends, byte by byte."""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from tests.e2e.harness import PASSWORD, SHARED_KEY, Mailroom

from mailroom.auth.mesh_hmac import build_header

#: Small limits, so the tests are quick; the size limits are the defaults.
EDGE_ENV = {
    "MAILROOM_HTTP_HEAD_TIMEOUT": "1s",
    "MAILROOM_HTTP_BODY_TIMEOUT": "1s",
    "MAILROOM_HTTP_KEEP_ALIVE": "1s",
    "MAILROOM_MAX_CONCURRENT_UPLOADS": "1",
}
LAYERS = ["mailroom", "uvicorn"]


def connect(server: Mailroom, timeout: float = 10.0) -> socket.socket:
    address = urlsplit(server.process.base_url)
    assert address.hostname
    assert address.port
    assert address.scheme == "http"
    return socket.create_connection((address.hostname, address.port), timeout=timeout)


def token(mailbox: str = "ALICE") -> str:
    return build_header(mailbox, PASSWORD, SHARED_KEY, nonce=str(uuid.uuid4()), at=datetime.now(UTC))


def send_head(to: str, size: int, *extra: str) -> bytes:
    lines = [
        "POST /messageexchange/ALICE/outbox HTTP/1.1",
        "Host: mailroom",
        f"Authorization: {token()}",
        f"Mex-From: ALICE\r\nMex-To: {to}\r\nMex-WorkflowID: E2E_WORKFLOW",
        "Content-Type: application/octet-stream",
        f"Content-Length: {size}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def read_all(sock: socket.socket, limit: float = 15.0) -> tuple[bytes, bool]:
    """Everything until the server closes (True) or ``limit`` seconds pass (False)."""
    data, ends = b"", time.monotonic() + limit
    while time.monotonic() < ends:
        sock.settimeout(max(0.05, ends - time.monotonic()))
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data, True
        if not piece:
            return data, True
        data += piece
    return data, False


def parse_responses(data: bytes) -> list[Response]:
    """The responses (with Content-Length bodies) in ``data``; a malformed one fails the test."""
    out = []
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"an unfinished response head: {head[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, status, *_ = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        assert status.isdigit(), status_line
        assert len(status) == 3, status_line
        headers = {}
        for line in lines:
            name, colon, value = line.partition(":")
            assert colon, f"a malformed header line {line!r}"
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        assert len(data) >= length, f"a body cut short: {headers}"
        out.append(Response(int(status), headers, data[:length]))
        data = data[length:]
    return out


def closed_by_server(sock: socket.socket, limit: float = 15.0) -> bool:
    """Whether the server closes ``sock`` within ``limit`` seconds (what arrives is dropped)."""
    return read_all(sock, limit)[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def send_until_answered(sock: socket.socket, head: bytes, filler: bytes, total: int) -> tuple[bytes, int]:
    """``head``, then ``filler`` over and over up to ``total`` bytes, stopping as soon as the
    server answers or stops reading; what it answered and how many filler bytes went out."""
    sock.sendall(head)
    sent, answer = 0, b""
    sock.setblocking(False)
    try:
        while sent < total and not answer:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            try:
                sent += sock.send(filler[: total - sent])
            except BlockingIOError:
                time.sleep(0.005)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.002)  # at most 8 MiB/s: the server has time to answer
    finally:
        sock.setblocking(True)
    return answer, sent
