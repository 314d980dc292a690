"""Large chunks stream through the server in constant memory (peak RSS of the server process).

The bodies are generated piece by piece on the client side, so neither side ever holds a
whole payload; the server's resident set is sampled (and its kernel high-water mark reset)
around each transfer.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest
from tests.e2e.conftest import StartServer
from tests.e2e.harness import MIB, Mailroom, Payload, PeakRss, send, sha256_of

pytestmark = pytest.mark.slow

SIZE = 100 * 1000 * 1000  # 100 MB: MESH's largest single request (spec §8)
MAX_GROWTH = 40 * MIB


@pytest.fixture
def server(start_server: StartServer) -> Mailroom:
    server = start_server()
    # warm up: imports, thread pool and connection pool exist before the baseline is taken
    alice, bob = server.client("ALICE"), server.client("BOB")
    warm = send(alice, Payload(2 * MIB, seed=0).pieces())
    assert bob.get(f"/messageexchange/BOB/inbox/{warm}").status_code == 200
    return server


def report(what: str, peak: PeakRss) -> None:
    print(f"{what}: baseline {peak.baseline / MIB:.1f} MiB, peak +{peak.growth / MIB:.1f} MiB")


def test_100mb_upload_and_download_in_constant_memory(server: Mailroom) -> None:
    payload = Payload(SIZE, seed=100)
    alice, bob = server.client("ALICE", timeout=120), server.client("BOB", timeout=120)

    with PeakRss(server.pid) as upload:
        message_id = send(alice, payload.pieces(), content_length=str(SIZE))
    with (
        PeakRss(server.pid) as fetch,
        bob.stream("GET", f"/messageexchange/BOB/inbox/{message_id}") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-length"] == str(SIZE)
        digest, size = sha256_of(response)

    report("100 MB upload", upload)
    report("100 MB download", fetch)
    assert (digest, size) == (payload.sha256, SIZE)
    assert upload.growth < MAX_GROWTH
    assert fetch.growth < MAX_GROWTH


def gzipped(payload: Payload) -> Iterator[bytes]:
    deflater = zlib.compressobj(1, zlib.DEFLATED, 31)
    for piece in payload.pieces():
        yield deflater.compress(piece)
    yield deflater.flush()


def test_gzip_stored_chunk_gunzipped_on_the_fly_in_constant_memory(server: Mailroom) -> None:
    # runs of one byte: a small body on the wire that inflates to 100 MB on download
    payload = Payload(SIZE, seed=7, compressible=True)
    alice, bob = server.client("ALICE", timeout=120), server.client("BOB", timeout=120)
    message_id = send(alice, gzipped(payload), content_encoding="gzip")  # Transfer-Encoding: chunked

    with (
        PeakRss(server.pid) as fetch,
        bob.stream(
            "GET", f"/messageexchange/BOB/inbox/{message_id}", headers={"accept-encoding": "identity"}
        ) as response,
    ):
        assert response.status_code == 200
        assert "content-encoding" not in response.headers
        digest, size = sha256_of(response)

    report("gunzip on the fly, 100 MB out", fetch)
    assert (digest, size) == (payload.sha256, payload.size)
    assert fetch.growth < MAX_GROWTH
