"""Checking that a body declared ``Content-Encoding: gzip`` is gzip, as it streams past.

MESH clients compress each chunk as a gzip stream of its own (docs/mesh-compatibility.md), and
a recipient that does not accept gzip gets each chunk decompressed by the server. A chunk that
is not gzip must so be refused when it is sent, not found out by the recipient's download.

``GzipCheck`` inflates what it is fed and throws the output away: the body itself passes on
untouched. Memory is bounded whatever the compression ratio (input in ``FEED`` slices, output
in ``STEP`` steps); the time is that of decompressing, paid only by bodies declared gzip. A
body is good when it is one or more whole gzip members (RFC 1952 §2.2 allows several one after
another, as ``cat a.gz b.gz`` makes) with nothing after the last. An empty body is left to the
rules for empty bodies.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

#: Input bytes inflated per call (what a call may have to copy as its unconsumed tail).
FEED = 64 * 1024
#: Output bytes a call may produce (and hold) before it returns.
STEP = 256 * 1024
_GZIP_ONLY = 16 + zlib.MAX_WBITS


class NotGzip(ValueError):
    """The bytes are not a whole gzip stream (the reason says where it went wrong)."""


class GzipCheck:
    """Feed it a body's pieces in order, then ``finish``; either raises ``NotGzip``."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(_GZIP_ONLY)
        self._fed = False

    def feed(self, piece: bytes | memoryview) -> None:
        whole = memoryview(piece)
        for start in range(0, len(whole), FEED):
            self._inflate(whole[start : start + FEED])
        self._fed = self._fed or bool(whole)

    def _inflate(self, data: bytes | memoryview) -> None:
        try:
            while True:
                if self._inflater.eof:  # the bytes after a member must start another one
                    if not data:
                        return
                    self._inflater = zlib.decompressobj(_GZIP_ONLY)
                produced = len(self._inflater.decompress(data, STEP))
                if self._inflater.eof:
                    data = self._inflater.unused_data
                    continue
                data = self._inflater.unconsumed_tail
                if not data and produced < STEP:  # all taken in, no output held back
                    return
        except zlib.error as exc:
            raise NotGzip(str(exc)) from None

    def finish(self) -> None:
        if self._fed and not self._inflater.eof:
            raise NotGzip("the gzip stream ends early")


def gzip_checked(data: Iterable[bytes]) -> Iterator[bytes]:
    """Pass ``data`` through, raising ``NotGzip`` as soon as it cannot be gzip (at the latest
    after its last piece)."""
    check = GzipCheck()
    for piece in data:
        check.feed(piece)
        yield piece
    check.finish()
