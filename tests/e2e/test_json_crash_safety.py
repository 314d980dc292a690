"""The JSON messaging API under SIGKILL: a message is on every face or on none.

A submit writes its attachments' bytes first and then one transaction records the envelope,
its deliveries and its links, so a server killed while an attachment is still arriving must
come back with no trace of that message on any face (the recipient's JSON and MESH inboxes,
the sender's outbox lists of both shapes), while a submit that got its 202 before the kill
downloads byte-exact. A D4Science upload staged before the kill is still not a message, and
the maintenance sweep removes it once ``staged_attachment_retention`` has passed.
"""

from __future__ import annotations

import threading

import httpx
import pytest
from tests.e2e.conftest import StartServer
from tests.e2e.harness import MIB, Mailroom, Payload, download, files_under, wait_for
from tests.e2e.json_harness import (
    BIG_BODIES,
    JsonClient,
    attachment_rows,
    everywhere,
    fetch_url,
    listed_ids,
    login,
    streamed,
)

pytestmark = pytest.mark.slow

BIG = 200 * MIB
MID_BODY = 8 * MIB  # bytes already stored when the server is killed


def in_background(call: object) -> tuple[threading.Thread, list[object]]:
    """Run ``call`` in a thread; the list receives its response or transport error."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())  # type: ignore[operator]
        except httpx.TransportError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def assert_delivered_intact(server: Mailroom, message_id: str, payload: Payload) -> None:
    """The recipient gets ``payload`` byte-exact through its signed link and through MESH."""
    bob = login(server, "BOB")
    record = bob.received(message_id)
    assert record["attachments"] == [
        {"name": "before.bin", "size": payload.size, "contentType": "application/octet-stream"}
    ]
    [(name, url)] = bob.attachment_urls(message_id)
    assert name == "before.bin"
    assert fetch_url(url) == (200, payload.sha256, payload.size)
    assert download(server.client("BOB"), message_id) == (200, payload.sha256, payload.size)


def test_kill_mid_upload_leaves_no_message_and_keeps_the_accepted_one(start_server: StartServer) -> None:
    server = start_server(env=BIG_BODIES)
    before = Payload(5 * MIB + 3, seed=1)
    accepted = login(server, "ALICE").submitted(before.pieces(), name="before.bin")
    rows_before = attachment_rows(server.data_dir)
    assert len(rows_before) == 1

    big = Payload(BIG, seed=2)
    uploader: JsonClient = login(server, "ALICE")
    stager: JsonClient = login(server, "ALICE")
    stuck = [
        in_background(lambda: uploader.submit(streamed(big, pause=0.05, after=MID_BODY), name="big.bin")),
        in_background(lambda: stager.stage(streamed(big, pause=0.05, after=MID_BODY), name="big.bin")),
    ]
    wait_for(
        lambda: len([p for p in files_under(server.uploads) if p.stat().st_size >= MID_BODY]) == 2,
        timeout=60,
        what="both uploads halfway through their bodies",
    )
    server.kill()
    for thread, outcome in stuck:
        thread.join(timeout=60)
        assert len(outcome) == 1, outcome
        assert isinstance(outcome[0], httpx.TransportError), outcome

    server.start()
    faces = everywhere(server)
    assert faces["BOB JSON inbox"] == [accepted]
    assert faces["BOB MESH inbox"] == [accepted]
    assert faces["ALICE /message/outbox"] == [accepted]
    assert faces["ALICE /2/messages/get-sent-messages"] == [accepted]
    assert listed_ids(server) == {accepted}, faces
    assert attachment_rows(server.data_dir) == rows_before  # neither killed upload was recorded
    assert_delivered_intact(server, accepted, before)


def test_staged_upload_killed_before_write_message_is_no_message_and_is_swept(
    start_server: StartServer,
) -> None:
    server = start_server(env=BIG_BODIES)
    before = Payload(2 * MIB, seed=3)
    accepted = login(server, "ALICE").submitted(before.pieces(), name="before.bin")
    staged_payload = Payload(3 * MIB, seed=4)
    answer = login(server, "ALICE").stage(staged_payload.pieces())
    assert answer.status_code == 200, answer.text
    staged = answer.json()["result"]
    server.kill()  # between the two D4Science steps: the upload answered, write-message never sent

    server.start()
    assert listed_ids(server) == {accepted}
    assert staged in attachment_rows(server.data_dir)
    staged_files = [p for p in files_under(server.objects) if staged in p.parts]
    assert [p.stat().st_size for p in staged_files] == [staged_payload.size]  # durable, unused

    # the sweep: every second, removing what no message used for 2 s
    server.stop()
    server.process.env.update(MAILROOM_SWEEP_INTERVAL="1s", MAILROOM_STAGED_ATTACHMENT_RETENTION="2s")
    server.start()
    wait_for(lambda: staged not in attachment_rows(server.data_dir), timeout=30, what="the sweep")
    wait_for(lambda: not any(p.exists() for p in staged_files), timeout=10, what="the staged bytes removed")
    assert listed_ids(server) == {accepted}
    late = login(server, "ALICE").write_message([staged])
    assert late.status_code in (400, 404), late.text
    assert listed_ids(server) == {accepted}
    assert_delivered_intact(server, accepted, before)  # the sweep left the linked attachment alone
