"""Retries that never duplicate, and resumed sends and downloads, through a real fault proxy."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from tests.support.fault_proxy import FaultProxy

from mailroom.client import MeshTransportError, RetryPolicy, SendOutcomeUnknown, ServerError

from .conftest import Target

OUTBOX = r"/messageexchange/ALICE/outbox"
CHUNK = r"/messageexchange/ALICE/outbox/[^/]+/(\d+)"


def chunk_numbers(proxy: FaultProxy) -> list[int]:
    return [int(seen.path.rsplit("/", 1)[1]) for seen in proxy.requests("POST", CHUNK)]


def sha(path) -> bytes:  # type: ignore[no-untyped-def]
    return hashlib.sha256(path.read_bytes()).digest()


@pytest.mark.parametrize("action", ["drop-after", "drop-before", "status"])
def test_first_post_failure_never_duplicates(server: Target, proxy: FaultProxy, action: str) -> None:
    """The send may have landed (drop-after) or not (drop-before, 503): either way, one message."""
    proxy.add("POST", OUTBOX, action, status=503)
    with server.client("ALICE", url=proxy.url) as alice, server.client("BOB") as bob:
        sent = alice.send_bytes("BOB", b"exactly once", "WF")
        assert bob.check_inbox() == [sent.message_id]
        assert sent.recovered is (action == "drop-after")
    posts = proxy.requests("POST", OUTBOX)
    assert len(posts) == (1 if action == "drop-after" else 2)
    assert proxy.requests("GET", OUTBOX + "/tracking/.*"), "asked the server whether it landed"


def test_429_waits_for_retry_after(server: Target, proxy: FaultProxy) -> None:
    proxy.add("POST", OUTBOX, "status", status=429, retry_after=1)
    with server.client("ALICE", url=proxy.url) as alice, server.client("BOB") as bob:
        started = time.monotonic()
        sent = alice.send_bytes("BOB", b"throttled", "WF")
        assert time.monotonic() - started >= 1.0
        assert bob.check_inbox() == [sent.message_id]
    assert len(proxy.requests("POST", OUTBOX)) == 2
    assert not proxy.requests("GET", OUTBOX + "/tracking/.*"), "a 429 was not processed: no need to track"


def test_every_attempt_has_a_fresh_token(mailroom: Target) -> None:
    """Mailroom refuses a reused token (403): the retry after a dropped answer must not reuse it."""
    with FaultProxy(mailroom.url, verify=mailroom.verify) as proxy:
        proxy.add("GET", r".*/inbox", "drop-after", times=2)
        with mailroom.client("BOB", url=proxy.url) as bob:
            assert bob.check_inbox() == []
        tokens = [seen.authorization for seen in proxy.requests("GET")]
        assert len(tokens) == 3
        assert len(set(tokens)) == 3


def test_chunks_are_retried_safely(server: Target, proxy: FaultProxy, tmp_path) -> None:
    source = tmp_path / "file.bin"
    source.write_bytes(os.urandom(50_000))
    third = r"/messageexchange/ALICE/outbox/[^/]+/3"
    proxy.add("POST", third, "drop-after")  # chunk 3 lands but its answer is lost
    proxy.add("POST", third, "status", status=503, times=2)  # then it is refused twice
    with server.client("ALICE", url=proxy.url, chunk_size=10_000) as alice, server.client("BOB") as bob:
        sent = alice.send_file("BOB", source, "WF")
        assert bob.check_inbox() == [sent.message_id]
        message = bob.download_message(sent.message_id, tmp_path / "in")
        assert message.path is not None
        assert sha(message.path) == sha(source)
    assert chunk_numbers(proxy) == [2, 3, 3, 3, 3, 4, 5]


def test_interrupted_send_resumes_from_the_chunks_done(server: Target, proxy: FaultProxy, tmp_path) -> None:
    source = tmp_path / "file.bin"
    source.write_bytes(os.urandom(60_000))
    proxy.add("POST", CHUNK, "status", status=503, skip=2, times=None)  # chunk 4 never gets through
    client = server.client(
        "ALICE", url=proxy.url, chunk_size=10_000, retry=RetryPolicy(attempts=2, backoff=0.01)
    )
    with client as alice, pytest.raises(ServerError):
        alice.send_file("BOB", source, "WF")
    assert len(list((tmp_path / "journal").glob("send-*.json"))) == 1
    proxy.clear()
    with server.client("ALICE", url=proxy.url, chunk_size=10_000) as alice, server.client("BOB") as bob:
        sent = alice.send_file("BOB", source, "WF")
        assert sent.resumed
        assert bob.check_inbox() == [sent.message_id]
        message = bob.download_message(sent.message_id, tmp_path / "in")
        assert message.path is not None
        assert sha(message.path) == sha(source)
    assert not proxy.requests("POST", OUTBOX), "chunk 1 was not sent again"
    assert chunk_numbers(proxy) == [4, 5, 6]
    assert list((tmp_path / "journal").glob("send-*.json")) == []


def test_a_send_whose_outcome_was_unknown_is_recovered_on_the_next_run(
    server: Target, proxy: FaultProxy, tmp_path
) -> None:
    """Chunk 1 landed, its answer was lost and tracking was down too: the client stops with
    SendOutcomeUnknown; the next run finds the message by local id and finishes it."""
    source = tmp_path / "file.bin"
    source.write_bytes(os.urandom(30_000))
    proxy.add("POST", OUTBOX, "drop-after")
    proxy.add("GET", OUTBOX + "/tracking/.*", "status", status=503, times=None)
    with server.client("ALICE", url=proxy.url, chunk_size=10_000) as alice, pytest.raises(SendOutcomeUnknown):
        alice.send_file("BOB", source, "WF")
    proxy.clear()
    with server.client("ALICE", url=proxy.url, chunk_size=10_000) as alice, server.client("BOB") as bob:
        sent = alice.send_file("BOB", source, "WF")
        assert sent.recovered
        assert bob.check_inbox() == [sent.message_id]
        message = bob.download_message(sent.message_id, tmp_path / "in")
        assert message.path is not None
        assert sha(message.path) == sha(source)
    assert not proxy.requests("POST", OUTBOX)
    assert chunk_numbers(proxy) == [2, 3]


def test_interrupted_download_resumes(server: Target, proxy: FaultProxy, tmp_path) -> None:
    source = tmp_path / "file.bin"
    source.write_bytes(os.urandom(50_000))
    with server.client("ALICE", chunk_size=10_000) as alice:
        message_id = alice.send_file("BOB", source, "WF").message_id
    inbox = f"/messageexchange/BOB/inbox/{message_id}"
    proxy.add("GET", inbox + "/3", "cut-body", times=None)
    folder = tmp_path / "in"
    with server.client("BOB", url=proxy.url, retry=RetryPolicy(attempts=2, backoff=0.01)) as bob:
        with pytest.raises(MeshTransportError):
            bob.download_message(message_id, folder)
        assert not (folder / f"{message_id}.dat").exists(), "nothing half-written under the final name"
        assert (folder / f".{message_id}.partial").stat().st_size == 20_000
    proxy.clear()
    with server.client("BOB", url=proxy.url) as bob:
        message = bob.download_message(message_id, folder)
    assert message.path is not None
    assert sha(message.path) == sha(source)
    assert [seen.path for seen in proxy.requests("GET")] == [f"{inbox}/{n}" for n in (3, 4, 5)]
    assert sorted(p.name for p in folder.iterdir()) == [f"{message_id}.dat", f"{message_id}.json"]


def test_a_body_cut_off_midway_is_fetched_again(server: Target, proxy: FaultProxy, tmp_path) -> None:
    with server.client("ALICE", chunk_size=10_000) as alice:
        payload = os.urandom(25_000)
        message_id = alice.send_bytes("BOB", payload, "WF").message_id
    proxy.add("GET", f"/messageexchange/BOB/inbox/{message_id}/2", "cut-body")
    with server.client("BOB", url=proxy.url) as bob:
        message = bob.download_message(message_id, tmp_path)
    assert message.read() == payload
