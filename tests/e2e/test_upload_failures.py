"""An upload that fails midway leaves nothing behind and frees its slot at once.

The server stores one upload at a time (``MAILROOM_MAX_CONCURRENT_UPLOADS=1``). A client that
declares 2 MiB, sends 100 KB and hangs up must leave no temporary payload file, and the next
upload, from another client, must be stored: a slot still held would make it wait for ever.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

import httpx
import pytest
from tests.e2e.conftest import StartServer
from tests.e2e.harness import (
    MIB,
    WORKFLOW,
    Mailroom,
    MeshAuth,
    Payload,
    files_under,
    wait_for,
)

DECLARED = 2 * MIB
SENT = 100_000


@pytest.fixture
def server(start_server: StartServer) -> Mailroom:
    return start_server(env={"MAILROOM_MAX_CONCURRENT_UPLOADS": "1"})


@contextmanager
def stalled_upload(server: Mailroom, *, chunked: bool = False) -> Iterator[socket.socket]:
    """An authenticated send from ALICE declaring ``DECLARED`` bytes that sends ``SENT`` of them
    and stops (``chunked``: no length declared, ``SENT`` bytes in one HTTP chunk); the
    connection is closed on the way out (the client hanging up)."""
    address = urlsplit(server.process.base_url)
    assert address.hostname
    assert address.port
    request = httpx.Request("POST", f"{server.process.base_url}/messageexchange/ALICE/outbox")
    token = next(MeshAuth("ALICE").auth_flow(request)).headers["authorization"]
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {DECLARED}"
    head = (
        "POST /messageexchange/ALICE/outbox HTTP/1.1\r\n"
        f"Host: {address.hostname}\r\n"
        f"Authorization: {token}\r\n"
        "Accept: application/vnd.mesh.v2+json\r\n"
        f"Mex-To: BOB\r\nMex-WorkflowID: {WORKFLOW}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"{length}\r\n\r\n"
    )
    body = f"{SENT:x}\r\n".encode() + b"s" * SENT + b"\r\n" if chunked else b"s" * SENT
    sock = socket.create_connection((address.hostname, address.port), timeout=30)
    try:
        sock.sendall(head.encode() + body)
        yield sock
    finally:
        sock.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_client_hanging_up_midway_leaves_no_temp_file_and_frees_the_slot(
    server: Mailroom, chunked: bool
) -> None:
    with stalled_upload(server, chunked=chunked):
        wait_for(lambda: bool(files_under(server.uploads)), what="the stalled upload's temp file")
    wait_for(lambda: not files_under(server.uploads), what="the temp file to go")

    bob = server.client("BOB")  # another client, another mailbox
    payload = Payload(DECLARED, seed=3)
    response = bob.post(
        "/messageexchange/BOB/outbox",
        content=payload.bytes(),
        headers={"mex-to": "ALICE", "mex-workflowid": WORKFLOW},
    )
    assert response.status_code == 202, response.text
    assert files_under(server.uploads) == []


def test_an_upload_waiting_for_the_slot_is_stored_whole_once_it_is_free(server: Mailroom) -> None:
    """The waiting upload keeps what it heard of its body while it waited (``web.uploads``) and
    the rest comes past the parser: the message downloads whole."""
    payload = Payload(DECLARED, seed=4)
    answers: list[httpx.Response] = []
    bob = server.client("BOB")

    def send() -> None:
        answers.append(
            bob.post(
                "/messageexchange/BOB/outbox",
                content=payload.bytes(),
                headers={"mex-to": "ALICE", "mex-workflowid": WORKFLOW},
            )
        )

    sender = threading.Thread(target=send)
    with stalled_upload(server):
        wait_for(lambda: bool(files_under(server.uploads)), what="the stalled upload's temp file")
        sender.start()
        wait_for(lambda: bool(answers) or sender.is_alive(), what="the second upload to start")
    sender.join(timeout=60)
    assert [answer.status_code for answer in answers] == [202], answers and answers[0].text
    message_id = answers[0].json()["message_id"]
    alice = server.client("ALICE")
    with alice.stream("GET", f"/messageexchange/ALICE/inbox/{message_id}") as got:
        assert got.status_code == 200
        assert got.read() == payload.bytes()
    assert files_under(server.uploads) == []


def test_one_mailbox_stalling_more_uploads_than_there_are_slots_holds_up_no_other(
    start_server: StartServer,
) -> None:
    """Issue 14: 34 uploads from ALICE that declared 2 MiB, sent 100 KB and stopped held all 32
    slots, and BOB's 2 MiB send and 5-byte chunk got no answer. ALICE now holds her share (8)."""
    server = start_server()
    with ExitStack() as stalled:
        for _ in range(34):
            stalled.enter_context(stalled_upload(server))
        wait_for(lambda: len(files_under(server.uploads)) >= 8, what="ALICE's share of the slots in use")
        bob = server.client("BOB", timeout=15)  # before, these waited until the stalled ones ended
        headers = {"mex-to": "ALICE", "mex-workflowid": WORKFLOW}
        large = bob.post(
            "/messageexchange/BOB/outbox", content=Payload(DECLARED, seed=5).bytes(), headers=headers
        )
        assert large.status_code == 202, large.text
        first = bob.post(
            "/messageexchange/BOB/outbox", content=b"chunk one", headers={**headers, "mex-chunk-range": "1:2"}
        )
        message_id = first.json()["message_id"]
        chunk = bob.post(
            f"/messageexchange/BOB/outbox/{message_id}/2",
            content=b"12345",
            headers={"mex-chunk-range": "2:2"},
        )
        assert chunk.status_code == 202, chunk.text
        assert len(files_under(server.uploads)) == 8  # ALICE's others wait, unread
    wait_for(lambda: not files_under(server.uploads), what="the stalled uploads' temp files to go")
