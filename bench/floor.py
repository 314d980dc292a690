"""The least any server must do for the large message, as a server of its own: the pipeline ceiling.

A large upload costs every server some work no code can avoid: the kernel's copies out of the
socket, a checksum of every byte (Mailroom keeps a SHA-256 of each chunk) and the disk write
with its fsync; a download costs the disk read and the copies into the socket. This server does
that work and nothing else, with Python's interpreter out of the way (2 MiB socket reads into
aligned buffers, O_DIRECT writes from a second thread while the next buffer fills, each chunk
fsynced and renamed into place before its 202, O_DIRECT reads of 1 MiB for downloads), and
the benchmark drives it with the same client as the real servers. Its rate is what this
machine allows, so a server's share of it shows what its own code costs.

It is not a MESH server: it answers only the four requests of bench.bulk's transfer, checks
no token, and keeps one connection at a time. Run: ``python -m bench.floor PORT DIRECTORY``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import mmap
import os
import socket
import ssl
import sys
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

BUFFER = 2 * 1024 * 1024
READ = 1024 * 1024
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)


class Floor:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._writer = ThreadPoolExecutor(1)
        self._memory = mmap.mmap(-1, 2 * BUFFER)
        whole = memoryview(self._memory)
        self._buffers = (whole[:BUFFER], whole[BUFFER:])
        self._held = b""

    def serve(self, listener: socket.socket) -> None:
        while True:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with contextlib.suppress(ConnectionError), conn:
                self._held = b""
                while self._one(conn):
                    pass

    def _one(self, conn: socket.socket) -> bool:
        while (end := self._held.find(b"\r\n\r\n")) < 0:
            piece = conn.recv(65536)
            if not piece:
                return False
            self._held += piece
        head, self._held = self._held[:end].decode("latin-1"), self._held[end + 4 :]
        request_line, *lines = head.split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        length = 0
        for line in lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        parts = path.strip("/").split("/")  # messageexchange/<box>/<outbox|inbox>/...
        if method == "POST":  # ids and chunk numbers parsed, never joined as given
            message_id = uuid.UUID(parts[3]).hex.upper() if len(parts) > 3 else uuid.uuid4().hex.upper()
            chunk = parts[4] if len(parts) > 4 else "1"
            self._store(conn, length, self.directory / f"{message_id}_{int(chunk)}")
            self._reply(conn, 202, json.dumps({"message_id": message_id}).encode())
        elif method == "GET" and path == "/_ping":
            self._reply(conn, 200, b"{}")
        elif method == "GET":
            self._send_file(conn, self.directory / f"{uuid.UUID(parts[3]).hex.upper()}_{int(parts[4])}")
        else:
            self._reply(conn, 200, b"{}")
        return True

    @staticmethod
    def _reply(conn: socket.socket, status: int, body: bytes) -> None:
        head = (
            f"HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        conn.sendall(head.encode() + body)

    def _store(self, conn: socket.socket, length: int, final: Path) -> None:
        """Receive ``length`` bytes into the aligned buffers, hash, write with O_DIRECT while the
        other buffer fills, write the tail, fsync, rename, fsync the directory."""
        tmp = final.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        direct = os.open(tmp, os.O_WRONLY | _O_DIRECT) if _O_DIRECT else fd
        digest = hashlib.sha256()
        writing: Future[int] | None = None
        offset, filling, left = 0, 0, length
        try:
            while left:
                buffer, fill = self._buffers[filling], 0
                held, self._held = self._held[: min(left, BUFFER)], self._held[min(left, BUFFER) :]
                buffer[: len(held)] = held
                fill = len(held)
                while fill < BUFFER and fill < left:
                    count = conn.recv_into(buffer[fill:], min(BUFFER, left) - fill)
                    if not count:
                        raise ConnectionError("closed mid-body")
                    fill += count
                digest.update(buffer[:fill])
                left -= fill
                if writing is not None:
                    writing.result()
                if fill == BUFFER:
                    writing = self._writer.submit(os.pwrite, direct, buffer, offset)
                else:
                    writing = None
                    os.pwrite(fd, buffer[:fill], offset)
                offset += fill
                filling ^= 1
            if writing is not None:
                writing.result()
            os.fsync(fd)
        finally:
            if direct != fd:
                os.close(direct)
            os.close(fd)
        os.replace(tmp, final)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _send_file(self, conn: socket.socket, path: Path) -> None:
        size = path.stat().st_size
        conn.sendall(f"HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n".encode())
        buffer = memoryview(self._memory)[:READ]
        try:
            fd = os.open(path, os.O_RDONLY | _O_DIRECT)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            fd = os.open(path, os.O_RDONLY)
        try:
            offset = 0
            while offset < size:
                count = os.preadv(fd, [buffer], offset)
                if not count:
                    break
                conn.sendall(buffer[:count])
                offset += count
        finally:
            os.close(fd)


def main(argv: list[str]) -> None:
    """``PORT DIRECTORY [CA CERT KEY]``: with the last three, mutual TLS as the servers use."""
    port, directory = int(argv[0]), Path(argv[1])
    listener = socket.create_server(("127.0.0.1", port))
    if len(argv) == 5:
        ca, cert, key = argv[2:]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
        context.load_cert_chain(cert, key)
        context.verify_mode = ssl.CERT_REQUIRED
        listener = context.wrap_socket(listener, server_side=True)
    thread = threading.Thread(target=Floor(directory).serve, args=(listener,), daemon=True)
    thread.start()
    print("listening", flush=True)
    thread.join()


if __name__ == "__main__":
    main(sys.argv[1:])
