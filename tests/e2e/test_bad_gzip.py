"""Gzip on a real server: a body declared gzip that is not is refused and leaves nothing; a
stored chunk that turns out bad mid-download (kept before uploads were checked) cuts the
response short with one log line, not a traceback, and the server goes on serving."""

from __future__ import annotations

import gzip
import random
import sqlite3
from collections.abc import Iterator

import httpx
import pytest
from tests.e2e.harness import MIB, WORKFLOW, Mailroom, files_under, send

NO_GZIP = {"accept-encoding": "identity"}


@pytest.mark.parametrize("body", [b"abcde", random.Random(1).randbytes(2 * MIB)], ids=["tiny", "2 MiB"])
def test_a_body_declared_gzip_that_is_not_is_400_and_stores_nothing(
    shared_server: Mailroom, body: bytes
) -> None:
    alice = shared_server.client("ALICE")
    response = alice.post(
        "/messageexchange/ALICE/outbox",
        content=body,
        headers={"mex-to": "BOB", "mex-workflowid": WORKFLOW, "content-encoding": "gzip"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"][0]["code"] == "Invalid file format"
    assert files_under(shared_server.uploads) == []
    assert send(alice, gzip.compress(b"the same connection goes on"), content_encoding="gzip")


def _read_into(received: bytearray, pieces: Iterator[bytes]) -> None:
    """Every piece, each added to ``received`` as it comes (kept if reading fails midway)."""
    for piece in pieces:
        received += piece


def test_stored_gzip_found_bad_mid_download_cuts_the_response_short(shared_server: Mailroom) -> None:
    plain = random.Random(2).randbytes(3 * MIB)
    stored = bytearray(gzip.compress(plain, mtime=0))
    stored[-8] ^= 0xFF  # the CRC: every piece decompresses, the end does not check out
    alice, bob = shared_server.client("ALICE"), shared_server.client("BOB")
    message_id = send(alice, bytes(stored))  # sent plain, then recorded as gzip below
    with sqlite3.connect(shared_server.data_dir / "mailroom.db") as db:
        db.execute("UPDATE messages SET content_encoding = 'gzip' WHERE message_id = ?", (message_id,))
    log_before = shared_server.process.log_path.read_text()

    received = bytearray()
    with bob.stream("GET", f"/messageexchange/BOB/inbox/{message_id}", headers=NO_GZIP) as response:
        assert response.status_code == 200  # the headers went before the end was reached
        pieces = response.iter_raw()
        with pytest.raises(httpx.RemoteProtocolError):  # no end of body: the connection closed
            _read_into(received, pieces)
    assert plain.startswith(received)
    assert len(received) < len(plain)

    log = shared_server.process.log_path.read_text()[len(log_before) :]
    ours = [line for line in log.splitlines() if message_id in line and " ERROR " in line]
    assert len(ours) == 1, log
    assert "Traceback" not in log
    assert bob.get("/messageexchange/BOB/inbox").status_code == 200
