"""One large chunked message up and down, over one blocking socket with as few copies as Python allows.

The upload sends slices of one 1 MiB block (``sendall`` of a memoryview: no copy in Python);
the download receives into one 1 MiB buffer (``recv_into``) and hashes slices of it. So the
client's cost is the kernel's socket copies and SHA-256 of every byte each way, and little
else: on a 2-core machine every cycle the client spends is one the server cannot have.

Imports nothing from Mailroom, so the same code drives any MESH server.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.loadgen import MIB, V2, ProtocolError, Target, mesh_token

#: Largest response head read before it is refused.
MAX_HEAD = 64 * 1024

Sink = Callable[[memoryview], None]


@dataclass
class LargeResult:
    message_id: str
    up_seconds: float
    down_seconds: float
    sha256_up: str
    sha256_down: str
    client_cpu_seconds: float


class BulkConnection:
    """One keep-alive HTTP/1.1 connection, one request at a time, bodies streamed."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._sock: socket.socket | None = None
        self._buffer = memoryview(bytearray(MIB))
        self._held = b""  # bytes received past what has been parsed

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.target.host, self.target.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            context = self.target.ssl_context()
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname=self.target.host)
            self._sock = sock
            self._held = b""
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def request(
        self,
        method: str,
        path: str,
        mailbox: str,
        *,
        headers: dict[str, str] | None = None,
        body: tuple[memoryview, int] | None = None,
        sent: Sink | None = None,
        sink: Sink | None = None,
    ) -> tuple[int, bytes]:
        """(status, body) of one request. ``body`` is (block, length): ``length`` bytes made of
        the block repeated, each piece given to ``sent`` just before it goes. With ``sink``,
        the response body goes there in pieces instead of being returned."""
        sock = self._connect()
        block, length = body if body is not None else (memoryview(b""), 0)
        lines = [
            f"{method} {path} HTTP/1.1",
            f"host: {self.target.host}:{self.target.port}",
            f"authorization: {mesh_token(mailbox, self.target.password, self.target.shared_key)}",
            f"accept: {V2}",
            f"content-length: {length}",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        left = length
        while left:
            piece = block[: min(len(block), left)]
            if sent is not None:
                sent(piece)
            sock.sendall(piece)
            left -= len(piece)
        return self._response(method, sink)

    def _response(self, method: str, sink: Sink | None) -> tuple[int, bytes]:
        status, headers = self._head()
        collected: list[bytes] = []
        put: Sink = sink or (lambda piece: collected.append(bytes(piece)))
        if method == "HEAD" or status in (204, 304):
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int(self._line().split(b";")[0], 16):
                self._body(size, put)
                self._line()
            while self._line():  # trailers, then the blank line
                pass
        elif "content-length" in headers:
            self._body(int(headers["content-length"]), put)
        else:
            raise ProtocolError("a response without a length")
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, b"".join(collected)

    def _fill(self) -> None:
        assert self._sock is not None
        count = self._sock.recv_into(self._buffer)
        if not count:
            raise ProtocolError("connection closed")
        self._held += self._buffer[:count]

    def _head(self) -> tuple[int, dict[str, str]]:
        while (end := self._held.find(b"\r\n\r\n")) < 0:
            if len(self._held) > MAX_HEAD:
                raise ProtocolError("response head too large")
            self._fill()
        head, self._held = self._held[:end].decode("latin-1"), self._held[end + 4 :]
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ProtocolError(f"bad status line {status_line!r}")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    def _line(self) -> bytes:
        while (end := self._held.find(b"\r\n")) < 0:
            self._fill()
        line, self._held = self._held[:end], self._held[end + 2 :]
        return line

    def _body(self, size: int, put: Sink) -> None:
        """``size`` body bytes to ``put``: what was held first, then straight from the socket."""
        held, self._held = self._held[:size], self._held[size:]
        if held:
            put(memoryview(held))
        left = size - len(held)
        assert self._sock is not None
        while left:
            count = self._sock.recv_into(self._buffer, min(left, len(self._buffer)))
            if not count:
                raise ProtocolError("connection closed mid-body")
            put(self._buffer[:count])
            left -= count


def large_transfer(
    target: Target, sender: str, recipient: str, total_bytes: int, chunk_bytes: int
) -> LargeResult:
    """Upload ``total_bytes`` in chunks, download every chunk and acknowledge; SHA-256 both ways."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    chunks = max(1, -(-total_bytes // chunk_bytes))
    block = memoryview(os.urandom(MIB))
    up, down = hashlib.sha256(), hashlib.sha256()
    conn = BulkConnection(target)
    message_id = ""
    started = time.perf_counter()
    left = total_bytes
    for n in range(1, chunks + 1):
        size = min(chunk_bytes, left)
        left -= size
        headers = {"mex-chunk-range": f"{n}:{chunks}", "content-type": "application/octet-stream"}
        if n == 1:
            headers.update({"mex-to": recipient, "mex-workflowid": "BENCH_LARGE"})
            path = f"/messageexchange/{sender}/outbox"
        else:
            path = f"/messageexchange/{sender}/outbox/{message_id}/{n}"
        status, reply = conn.request(
            "POST", path, sender, headers=headers, body=(block, size), sent=up.update
        )
        if status != 202:
            raise ProtocolError(f"chunk {n}: {status} {reply[:300]!r}")
        if n == 1:
            found = json.loads(reply)
            message_id = found.get("message_id") or found["messageID"]
    up_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for n in range(1, chunks + 1):
        path = f"/messageexchange/{recipient}/inbox/{message_id}/{n}"
        status, _ = conn.request("GET", path, recipient, sink=down.update)
        if status not in (200, 206):
            raise ProtocolError(f"download chunk {n}: {status}")
    down_seconds = time.perf_counter() - started
    conn.request("PUT", f"/messageexchange/{recipient}/inbox/{message_id}/status/acknowledged", recipient)
    conn.close()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return LargeResult(message_id, up_seconds, down_seconds, up.hexdigest(), down.hexdigest(), cpu)
