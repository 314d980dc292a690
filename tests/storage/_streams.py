"""Payload bodies made as they are read, so a test never holds the whole payload itself."""

from __future__ import annotations

from collections.abc import Iterator

MIB = 1024 * 1024


def pieces(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """``total`` bytes in pieces of ``size``, made as they are asked for."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield bytes([sent // size % 251]) * piece
        sent += piece
