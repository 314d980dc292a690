"""``Idempotency-Key`` on ``POST /message/submit`` against a real server, over real HTTP.

The fault proxy forwards a submit and then drops the connection (``drop-after``): the server
committed, the client never heard. A retry with the same key answers 202 with the same
``as2MessageId`` and the recipient has the message once, on the JSON and the MESH face. The
same key for a different message is 409 and changes nothing; many submits racing with one key
make one message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from tests.e2e.conftest import StartServer
from tests.e2e.harness import MIB, Mailroom, Payload, blocking_body, download, upload_in_progress, wait_for
from tests.e2e.json_harness import JsonClient, everywhere, fetch_url, login, sha256_hex
from tests.support.fault_proxy import FaultProxy

SUBMIT = r"/message/submit"


@pytest.fixture
def server(start_server: StartServer) -> Mailroom:
    return start_server()


@pytest.fixture
def proxy(server: Mailroom) -> Iterator[FaultProxy]:
    with FaultProxy(server.process.base_url) as proxy:
        yield proxy


def only_message(server: Mailroom) -> str:
    """The one message on every face (asserting there is exactly one, the same everywhere)."""
    faces = everywhere(server)
    [message_id] = faces["BOB JSON inbox"]
    for face in ("BOB MESH inbox", "ALICE /message/outbox", "ALICE /2/messages/get-sent-messages"):
        assert faces[face] == [message_id], faces
    assert all(set(found) <= {message_id} for found in faces.values()), faces
    return message_id


def test_retry_after_a_lost_answer_gets_the_same_message(server: Mailroom, proxy: FaultProxy) -> None:
    payload = Payload(MIB + 5, seed=1)
    alice = login(server, "ALICE", base_url=proxy.url)
    proxy.add("POST", SUBMIT, "drop-after")
    with pytest.raises(httpx.TransportError):
        alice.submit(payload.bytes(), key="retry-me")
    committed = only_message(server)  # the server acted on the request it never answered

    retried = alice.submit(payload.bytes(), key="retry-me")
    assert retried.status_code == 202, retried.text
    assert retried.json()["as2MessageId"] == committed
    assert retried.json()["messageIdentifier"] == committed
    assert [seen.action for seen in proxy.requests("POST", SUBMIT)] == ["drop-after", "forward"]
    assert only_message(server) == committed
    [(_, url)] = login(server, "BOB").attachment_urls(committed)
    assert fetch_url(url) == (200, payload.sha256, payload.size)
    assert download(server.client("BOB"), committed) == (200, payload.sha256, payload.size)


def test_same_key_for_other_recipients_or_subject_is_409_and_changes_nothing(server: Mailroom) -> None:
    alice = login(server, "ALICE")
    body = b"the first message's attachment"
    first = alice.submitted(body, key="once")
    refusals = {
        "another recipient": alice.submit(body, key="once", to="ALICE"),
        "one more recipient": alice.submit(body, key="once", to="BOB,ALICE"),
        "another subject": alice.submit(body, key="once", subject="other"),
    }
    for what, answer in refusals.items():
        assert answer.status_code == 409, f"{what}: {answer.status_code} {answer.text}"
        assert set(answer.json()) >= {"message"}, answer.text
    # the same recipients and subject: a retry, answered without reading its body (documented)
    same = alice.submit(b"other bytes: not read", key="once", to="bob")
    assert (same.status_code, same.json()["as2MessageId"]) == (202, first), same.text
    assert only_message(server) == first
    assert login(server, "ALICE").json_inbox() == []
    [(_, url)] = login(server, "BOB").attachment_urls(first)
    assert fetch_url(url) == (200, sha256_hex(body), len(body))


def test_same_key_for_other_bytes_while_the_first_is_uploading_is_409(server: Mailroom) -> None:
    """The first submit is still streaming when another with its key but other bytes commits:
    the first, when its body is in, is refused (its digest differs) and leaves no message."""
    slow, fast = login(server, "ALICE"), login(server, "ALICE")
    release = threading.Event()
    answers: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: answers.append(
            slow.submit(
                blocking_body(Payload(16 * MIB, seed=3).pieces(), release), key="shared", name="a.bin"
            )
        )
    )
    first.start()
    try:
        wait_for(upload_in_progress(server, MIB), what="the first upload under way")
        second = fast.submitted(b"the second's bytes", key="shared", name="a.bin")
    finally:
        release.set()
    first.join(timeout=30)
    [late] = answers
    assert late.status_code == 409, late.text
    assert only_message(server) == second


def test_concurrent_submits_with_one_key_make_one_message(server: Mailroom) -> None:
    payload = Payload(256 * 1024, seed=2)
    clients: list[JsonClient] = [login(server, "ALICE") for _ in range(8)]
    answers: list[httpx.Response] = []
    start = threading.Barrier(len(clients))

    def submit(client: JsonClient) -> None:
        start.wait(timeout=10)
        answers.append(client.submit(payload.bytes(), key="raced"))

    threads = [threading.Thread(target=submit, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [a.status_code for a in answers] == [202] * len(clients), [a.text for a in answers]
    ids = {answer.json()["as2MessageId"] for answer in answers}
    assert len(ids) == 1, ids
    assert only_message(server) == ids.pop()
