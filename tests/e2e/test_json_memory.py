"""Large JSON API attachments stream through the server in bounded memory (its peak RSS).

The bodies are generated piece by piece on the client side and every download is hashed as it
streams, so neither side holds a whole attachment; ``PeakRss`` (harness) samples the server's
resident set and reads its kernel high-water mark around each transfer. What the server may
use in all, not just what it grows by, is bounded: ``MAX_RSS``.
"""

from __future__ import annotations

import uuid

import pytest
from tests.e2e.conftest import StartServer
from tests.e2e.harness import MIB, Mailroom, Payload, PeakRss, download, sha256_of
from tests.e2e.json_harness import BIG_BODIES, fetch_url, form_body, form_headers, login

pytestmark = pytest.mark.slow

GIB = 1024 * MIB
MAX_RSS = 150 * MIB


@pytest.fixture
def server(start_server: StartServer) -> Mailroom:
    server = start_server(env=BIG_BODIES)
    # warm up: imports, thread pools, the link key and both download paths exist before measuring
    warm = Payload(2 * MIB, seed=0)
    message_id = login(server, "ALICE").submitted(warm.pieces())
    [(_, url)] = login(server, "BOB").attachment_urls(message_id)
    assert fetch_url(url) == (200, warm.sha256, warm.size)
    assert download(server.client("BOB"), message_id) == (200, warm.sha256, warm.size)
    return server


def report(what: str, peak: PeakRss) -> None:
    print(f"{what}: baseline {peak.baseline / MIB:.1f} MiB, peak {peak.peak / MIB:.1f} MiB")


def test_1gib_attachment_submitted_and_downloaded_both_ways_in_bounded_memory(server: Mailroom) -> None:
    payload = Payload(GIB, seed=1)
    alice, bob = login(server, "ALICE", timeout=300), login(server, "BOB", timeout=300)

    with PeakRss(server.pid) as upload:
        message_id = alice.submitted(
            payload.pieces(), name="big.bin", headers={"Content-Length": str(payload.size)}
        )
    [(name, url)] = bob.attachment_urls(message_id)
    assert name == "big.bin"
    with PeakRss(server.pid) as by_link:
        assert fetch_url(url, timeout=300) == (200, payload.sha256, payload.size)
    with PeakRss(server.pid) as by_mesh:
        assert download(server.client("BOB", timeout=300), message_id) == (200, payload.sha256, payload.size)

    report("1 GiB submit", upload)
    report("1 GiB by signed link", by_link)
    report("1 GiB by MESH", by_mesh)
    for peak in (upload, by_link, by_mesh):
        assert peak.peak < MAX_RSS


def test_multipart_submit_of_three_50mib_files_in_bounded_memory(server: Mailroom) -> None:
    parts = [(f"part-{n}.bin", Payload(50 * MIB + n, seed=10 + n)) for n in range(3)]
    boundary = uuid.uuid4().hex
    alice, bob = login(server, "ALICE", timeout=300), login(server, "BOB", timeout=300)

    with PeakRss(server.pid) as upload:
        message_id = alice.submitted(form_body(boundary, parts), headers=form_headers(boundary))
    links = bob.attachment_urls(message_id)
    assert [name for name, _ in links] == [name for name, _ in parts]
    with PeakRss(server.pid) as by_link:
        for (_, url), (_, payload) in zip(links, parts, strict=True):
            assert fetch_url(url, timeout=300) == (200, payload.sha256, payload.size)
    # MESH sees one multipart/mixed document composed from the three as it is read
    with (
        PeakRss(server.pid) as by_mesh,
        server.client("BOB", timeout=300).stream(
            "GET", f"/messageexchange/BOB/inbox/{message_id}"
        ) as response,
    ):
        assert response.status_code == 200
        _digest, size = sha256_of(response)
    assert size == int(response.headers["content-length"]) > sum(p.size for _, p in parts)

    report("3 x 50 MiB multipart submit", upload)
    report("3 x 50 MiB by signed links", by_link)
    report("3 x 50 MiB as one MESH document", by_mesh)
    for peak in (upload, by_link, by_mesh):
        assert peak.peak < MAX_RSS
