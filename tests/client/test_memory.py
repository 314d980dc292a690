"""Constant memory both ways: a 200 MB message in 64 MiB chunks never sits in the client's memory."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

import pytest

from .conftest import Target

SIZE = 200 * 1024 * 1024
CHUNK = 64 * 1024 * 1024
LIMIT = 8 * 1024 * 1024  # far below one chunk: a chunk held in memory would show


def _peak(action):  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        result = action()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_large_send_and_download_use_constant_memory(mailroom: Target, tmp_path) -> None:
    source = tmp_path / "large.bin"
    digest = hashlib.sha256()
    block = os.urandom(1024 * 1024)
    with source.open("wb") as handle:
        for n in range(SIZE // len(block)):
            piece = n.to_bytes(8, "big") + block[8:]
            handle.write(piece)
            digest.update(piece)
    with mailroom.client("ALICE", chunk_size=CHUNK) as alice, mailroom.client("BOB") as bob:
        sent, send_peak = _peak(lambda: alice.send_file("BOB", source, "WF_LARGE"))
        assert sent.total_chunks == 4
        message, download_peak = _peak(lambda: bob.download_message(sent.message_id, tmp_path / "in"))
    assert send_peak < LIMIT, f"send peaked at {send_peak / 2**20:.1f} MiB"
    assert download_peak < LIMIT, f"download peaked at {download_peak / 2**20:.1f} MiB"
    received = hashlib.sha256()
    with message.path.open("rb") as handle:
        while piece := handle.read(1024 * 1024):
            received.update(piece)
    assert received.digest() == digest.digest()
