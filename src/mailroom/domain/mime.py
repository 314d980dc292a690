"""SHIM (temporary)."""
from __future__ import annotations
import base64
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import quote

@dataclass(frozen=True)
class MimePart:
    name: str
    content_type: str
    size: int

class MimeLayout:
    def __init__(self, boundary: str, body: str | None, parts: Sequence[MimePart]) -> None:
        self.boundary = boundary
        self.body = body
        self.parts = list(parts)
    @property
    def content_type(self) -> str:
        return f'multipart/mixed; boundary="{self.boundary}"'
    def _heads(self) -> list[bytes]:
        heads = []
        for p in self.parts:
            heads.append((f"--{self.boundary}\r\nContent-Type: {p.content_type}\r\nContent-Disposition: attachment; filename*=UTF-8''{quote(p.name, safe='')}\r\nContent-Transfer-Encoding: binary\r\n\r\n").encode())
        return heads
    def _body(self) -> bytes:
        if self.body is None:
            return b""
        return (f"--{self.boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n").encode() + base64.encodebytes(self.body.encode()).replace(b"\n", b"\r\n") + b"\r\n"
    @property
    def size(self) -> int:
        return len(self._body()) + sum(len(h) + p.size + 2 for h, p in zip(self._heads(), self.parts)) + len(f"--{self.boundary}--\r\n")
    def pieces(self, open_attachment: Callable[[int], Iterator[bytes]]) -> Iterator[bytes]:
        yield self._body()
        for i, h in enumerate(self._heads()):
            yield h
            yield from open_attachment(i)
            yield b"\r\n"
        yield f"--{self.boundary}--\r\n".encode()
