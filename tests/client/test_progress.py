"""Progress callbacks: sends report each ~1 MiB block as it streams out (not once per chunk),
downloads report the bytes as they arrive (as sent: gzipped if the server gzips) with the
expected total; retries are not counted twice."""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path

from tests.support.fault_proxy import FaultProxy

from .conftest import Target

MIB = 1024 * 1024
CHUNK = r"/messageexchange/ALICE/outbox/[^/]+/(\d+)"


def test_a_one_chunk_send_reports_every_block(server: Target, tmp_path: Path) -> None:
    """A file in one chunk (as 50 MB in the default 75 MiB chunks) moves the bar as it goes."""
    path = tmp_path / "one-chunk.bin"
    path.write_bytes(b"a" * (5 * MIB + 123))
    calls: list[int] = []
    with server.client("ALICE") as alice:
        sent = alice.send_file("BOB", path, "WF", progress=calls.append)
    assert sent.total_chunks == 1
    assert calls == [MIB] * 5 + [123], "one call per block read, before the server answered"


def test_a_chunk_sent_again_is_not_counted_twice(server: Target, proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.add("POST", CHUNK, "drop-before")  # chunk 2's body went out, then the connection broke
    path = tmp_path / "chunked.bin"
    path.write_bytes(b"b" * (3 * MIB))
    calls: list[int] = []
    with server.client("ALICE", url=proxy.url) as alice:
        alice.send_file("BOB", path, "WF", chunk_size=MIB, progress=calls.append)
    running = list(accumulate(calls))
    assert -MIB in calls, "the failed attempt's bytes were taken back"
    assert max(running) <= 3 * MIB
    assert running[-1] == 3 * MIB


def test_download_progress_reaches_the_exact_total(server: Target, tmp_path: Path) -> None:
    with server.client("ALICE") as alice:
        message_id = alice.send_bytes("BOB", b"c" * (3 * MIB + 10), "WF", chunk_size=MIB).message_id
    calls: list[tuple[str, int, int | None]] = []
    with server.client("BOB") as bob:
        bob.download_message(message_id, tmp_path, progress=lambda *call: calls.append(call))
    assert {call[0] for call in calls} == {message_id}
    received = [call[1] for call in calls]
    assert received == sorted(received), "only ever forwards"
    assert len(set(received)) >= 4, "moves within the message, chunk by chunk at least"
    _, got, expected = calls[-1]
    assert got == expected, "exact once the last chunk started"
    if server.name == "mailroom":  # mesh-sandbox gzips chunks: the bytes counted are the gzipped ones
        assert calls[0][2] == 4 * MIB, "estimated from the first chunk's size"
        assert got == 3 * MIB + 10


def test_check_and_download_reports_each_message(server: Target, tmp_path: Path) -> None:
    with server.client("ALICE") as alice:
        ids = {alice.send_bytes("BOB", b"d" * size, "WF").message_id: size for size in (10, 2 * MIB)}
    last: dict[str, tuple[int, int | None]] = {}
    with server.client("BOB") as bob:
        bob.check_and_download(
            tmp_path, progress=lambda message_id, got, total: last.update({message_id: (got, total)})
        )
    assert set(last) == set(ids)
    assert all(got == total for got, total in last.values())
    if server.name == "mailroom":  # mesh-sandbox gzips: fewer bytes on the wire
        assert last == {message_id: (size, size) for message_id, size in ids.items()}
