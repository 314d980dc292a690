"""A lean MESH load generator: raw HTTP/1.1 on asyncio streams, keep-alive, fresh NHSMESH tokens.

No HTTP library sits between the socket and the server: requests are written as bytes and
responses parsed by hand (Content-Length or chunked bodies), so the client spends a small,
known amount of CPU per request. Work is split over several processes (``multiprocessing``),
each running many connections on one event loop; every process reports its own CPU time.

This module imports nothing from Mailroom, so the same code drives any MESH server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import resource
import ssl
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import Any

V2 = "application/vnd.mesh.v2+json"
MIB = 1024 * 1024


def mesh_token(mailbox: str, password: str, shared_key: str) -> str:
    """A single-use ``NHSMESH`` token: fresh nonce, current minute (spec §2)."""
    nonce = uuid.uuid4().hex
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M")
    text = f"{mailbox}:{nonce}:0:{password}:{stamp}"
    digest = hmac.new(shared_key.encode(), text.encode(), hashlib.sha256).hexdigest()
    return f"NHSMESH {mailbox}:{nonce}:0:{stamp}:{digest}"


@dataclass(frozen=True)
class Tls:
    """Mutual TLS, as MESH is deployed: the CA that signed the server, and the client's own
    certificate and key (PEM files)."""

    ca: str
    cert: str
    key: str

    def client_context(self) -> ssl.SSLContext:
        return _client_context(self)


_contexts: dict[Tls, ssl.SSLContext] = {}


def _client_context(tls: Tls) -> ssl.SSLContext:
    """One context per process (loading the CA and the key pair costs a few ms)."""
    context = _contexts.get(tls)
    if context is None:
        context = ssl.create_default_context(cafile=tls.ca)
        context.load_cert_chain(tls.cert, tls.key)
        _contexts[tls] = context
    return context


@dataclass(frozen=True)
class Target:
    """Where a server listens and how to sign for it (and, with ``tls``, how to reach it)."""

    host: str
    port: int
    shared_key: str
    password: str
    tls: Tls | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        return None if self.tls is None else self.tls.client_context()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class ProtocolError(RuntimeError):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection. Not safe for concurrent use: one request at a time."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._host_header = f"{target.host}:{target.port}"

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(
                self.target.host, self.target.port, limit=4 * MIB, ssl=self.target.ssl_context()
            )
        return self._reader, self._writer

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    def _head(self, method: str, path: str, mailbox: str, headers: dict[str, str], length: int) -> bytes:
        lines = [
            f"{method} {path} HTTP/1.1",
            f"host: {self._host_header}",
            f"authorization: {mesh_token(mailbox, self.target.password, self.target.shared_key)}",
            f"accept: {V2}",
            f"content-length: {length}",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def request(
        self,
        method: str,
        path: str,
        mailbox: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | Iterable[bytes] = b"",
        length: int | None = None,
        sink: Callable[[bytes], None] | None = None,
    ) -> Response:
        """Send one request; the body is bytes, or pieces with ``length`` given.

        With ``sink``, response body pieces go to it instead of being collected.
        """
        reader, writer = await self._connect()
        if isinstance(body, bytes):
            writer.write(self._head(method, path, mailbox, headers or {}, len(body)) + body)
        else:
            assert length is not None, "streamed bodies need a length"
            writer.write(self._head(method, path, mailbox, headers or {}, length))
            for piece in body:
                writer.write(piece)
                await writer.drain()
        await writer.drain()
        return await self._read_response(reader, method, sink)

    async def _read_response(
        self, reader: asyncio.StreamReader, method: str, sink: Callable[[bytes], None] | None
    ) -> Response:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ProtocolError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        pieces: list[bytes] = []
        put = sink or pieces.append
        if method == "HEAD" or status in (204, 304):
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            await self._read_chunked(reader, put)
        elif "content-length" in headers:
            left = int(headers["content-length"])
            while left:
                piece = await reader.read(min(left, MIB))
                if not piece:
                    raise ProtocolError("connection closed mid-body")
                left -= len(piece)
                put(piece)
        else:
            put(await reader.read())  # until close
            await self.close()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, headers, b"".join(pieces))

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader, put: Callable[[bytes], None]) -> None:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return
            left = size
            while left:
                piece = await reader.read(min(left, MIB))
                if not piece:
                    raise ProtocolError("connection closed mid-chunk")
                left -= len(piece)
                put(piece)
            await reader.readexactly(2)


# -- workloads ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one worker process did: counts, request latencies (seconds) and its own CPU time."""

    messages: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    ids: list[str] = field(default_factory=list)

    def merge(self, other: Tally) -> None:
        self.messages += other.messages
        self.requests += other.requests
        self.errors += other.errors
        self.latencies += other.latencies
        self.cpu_seconds += other.cpu_seconds
        self.ids += other.ids


async def _timed(tally: Tally, call: Any) -> Response:
    started = time.perf_counter()
    response: Response = await call
    tally.latencies.append(time.perf_counter() - started)
    tally.requests += 1
    return response


async def send_loop(
    target: Target, sender: str, recipients: list[str], count: int, body: bytes, tally: Tally
) -> None:
    """Send ``count`` single-chunk messages over one connection, recipients round-robin."""
    conn = Connection(target)
    try:
        for n in range(count):
            headers = {
                "mex-to": recipients[n % len(recipients)],
                "mex-workflowid": "BENCH",
                "content-type": "application/octet-stream",
            }
            response = await _timed(
                tally,
                conn.request("POST", f"/messageexchange/{sender}/outbox", sender, headers=headers, body=body),
            )
            if response.status != 202:
                tally.errors.append(f"send {response.status} {response.body[:200]!r}")
                continue
            tally.messages += 1
    finally:
        await conn.close()


async def receive_loop(target: Target, mailbox: str, expect: int, size: int, tally: Tally) -> None:
    """List, download and acknowledge until ``expect`` messages arrived (or the inbox is empty)."""
    conn = Connection(target)
    base = f"/messageexchange/{mailbox}/inbox"
    try:
        while tally.messages < expect:
            page = await _timed(tally, conn.request("GET", f"{base}?max_results=500", mailbox))
            if page.status != 200:
                tally.errors.append(f"list {page.status}")
                return
            ids = _json_messages(page.body)
            if not ids:
                return
            for message_id in ids:
                got = await _timed(tally, conn.request("GET", f"{base}/{message_id}", mailbox))
                if got.status != 200 or len(got.body) != size:
                    tally.errors.append(f"download {got.status} {len(got.body)}")
                    continue
                acked = await _timed(
                    tally, conn.request("PUT", f"{base}/{message_id}/status/acknowledged", mailbox)
                )
                if acked.status != 200:
                    tally.errors.append(f"ack {acked.status}")
                    continue
                tally.messages += 1
    finally:
        await conn.close()


def _json_messages(body: bytes) -> list[str]:
    import json

    messages: list[str] = json.loads(body)["messages"]
    return messages


def _run_worker(job: tuple[str, Target, list[dict[str, Any]]]) -> Tally:
    """Process entry point: run every coroutine spec on one event loop, report own CPU."""
    kind, target, specs = job
    before = resource.getrusage(resource.RUSAGE_SELF)
    tally = Tally()

    async def main() -> None:
        if kind == "send":
            coros = [send_loop(target, tally=tally, **spec) for spec in specs]
        else:
            coros = [receive_loop(target, tally=tally, **spec) for spec in specs]
        await asyncio.gather(*coros)

    asyncio.run(main())
    after = resource.getrusage(resource.RUSAGE_SELF)
    tally.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return tally


def run_processes(kind: str, target: Target, specs: list[dict[str, Any]], processes: int) -> Tally:
    """Spread ``specs`` (one connection each) over ``processes`` worker processes."""
    processes = max(1, min(processes, len(specs)))
    jobs = [(kind, target, specs[n::processes]) for n in range(processes)]
    total = Tally()
    with get_context("fork").Pool(processes) as pool:
        for tally in pool.map(_run_worker, jobs):
            total.merge(tally)
    return total


async def page_through(target: Target, mailbox: str, page_size: int) -> tuple[float, float, int, int]:
    """(first page seconds, all pages seconds, messages listed, pages) following ``links.next``."""
    import json

    conn = Connection(target)
    path = f"/messageexchange/{mailbox}/inbox?max_results={page_size}"
    started = time.perf_counter()
    first = 0.0
    listed = pages = 0
    while path:
        response = await conn.request("GET", path, mailbox)
        if response.status != 200:
            raise ProtocolError(f"list: {response.status} {response.body[:200]!r}")
        if not pages:
            first = time.perf_counter() - started
        body = json.loads(response.body)
        listed += len(body["messages"])
        pages += 1
        path = body.get("links", {}).get("next", "")
    total = time.perf_counter() - started
    await conn.close()
    return first, total, listed, pages


async def first_page_times(target: Target, mailbox: str, repeats: int) -> list[float]:
    conn = Connection(target)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = await conn.request("GET", f"/messageexchange/{mailbox}/inbox", mailbox)
        times.append(time.perf_counter() - started)
        if response.status != 200:
            raise ProtocolError(f"list: {response.status}")
    await conn.close()
    return times
