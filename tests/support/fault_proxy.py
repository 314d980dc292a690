"""A small HTTP fault-injection proxy on loopback, for client retry and resume tests.

Clients talk plain HTTP to the proxy; it forwards each request to the upstream server (HTTPS
verified against a CA, or HTTP) unless a :class:`Rule` says otherwise. Rules match a method
and a path regex and can:

- ``drop-before``: close the connection without forwarding or answering;
- ``drop-after``: forward (the server acts on it), then close without answering;
- ``cut-body``: forward, then send the headers and half of the body, and close;
- ``status``: answer ``status`` (e.g. 503, or 429 with ``retry_after``) without forwarding.

``skip`` lets that many matching requests through first; ``times`` is how many are then
affected (``None``: all). Every request is logged as a :class:`Seen`.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}


@dataclass
class Rule:
    method: str
    path: str
    action: str
    status: int = 503
    retry_after: int | None = None
    skip: int = 0
    times: int | None = 1
    matched: int = 0

    def applies(self, method: str, path: str) -> bool:
        if method != self.method or not re.fullmatch(self.path, path):
            return False
        self.matched += 1
        if self.matched <= self.skip:
            return False
        return self.times is None or self.matched - self.skip <= self.times


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    action: str
    authorization: str | None


class FaultProxy:
    def __init__(self, upstream: str, *, verify: ssl.SSLContext | bool = True) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._http = httpx.Client(verify=verify, timeout=60)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, method: str, path: str, action: str, **options: object) -> Rule:
        rule = Rule(method, path, action, **options)  # type: ignore[arg-type]
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.seen.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [
            seen
            for seen in self.seen
            if (method is None or seen.method == method) and (path is None or re.fullmatch(path, seen.path))
        ]

    def decide(self, method: str, path: str, authorization: str | None) -> Rule | None:
        with self._lock:
            rule = next((rule for rule in self.rules if rule.applies(method, path)), None)
            self.seen.append(Seen(method, path, rule.action if rule else "forward", authorization))
            return rule

    def forward(self, method: str, target: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        request = self._http.build_request(method, self.upstream + target, headers=headers, content=body)
        response = self._http.send(request, stream=True)
        response.raw_body = b"".join(response.iter_raw())  # type: ignore[attr-defined]
        response.close()
        return response

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"proxy": proxy})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: FaultProxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = []
        while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(parts)

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _answer(self, rule: Rule) -> None:
        payload = json.dumps({"errorEvent": "", "errorCode": "", "errorDescription": "injected"}).encode()
        self.send_response(rule.status)
        if rule.retry_after is not None:
            self.send_header("Retry-After", str(rule.retry_after))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _relay(self, upstream: httpx.Response, raw: bytes, cut: bool) -> None:
        self.send_response(upstream.status_code)
        for name, value in upstream.headers.multi_items():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if cut:
            self.wfile.write(raw[: len(raw) // 2])
            self.wfile.flush()
            self._drop()
            return
        self.wfile.write(raw)

    def _handle(self) -> None:
        body = self._body()
        rule = self.proxy.decide(self.command, self.path.split("?", 1)[0], self.headers.get("Authorization"))
        action = rule.action if rule else "forward"
        if action == "drop-before":
            self._drop()
        elif rule is not None and action == "status":
            self._answer(rule)
        else:
            headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
            upstream = self.proxy.forward(self.command, self.path, headers, body)
            if action == "drop-after":
                self._drop()
            else:
                self._relay(upstream, upstream.raw_body, cut=action == "cut-body")  # type: ignore[attr-defined]

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle
