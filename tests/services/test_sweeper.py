"""The sweep runs inside the server process with no set-up, and cleans what a crash leaves."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from mailroom.container import build_container
from mailroom.domain.messages import ChunkRange, Metadata
from mailroom.ids import new_message_id
from mailroom.services.authentication import MailboxPrincipal
from mailroom.services.maintenance import ORPHAN_GRACE
from mailroom.services.sending import SendRequest
from mailroom.storage.payloads import PayloadMissing, chunk_key
from mailroom.web.app import create_app


def test_server_process_expires_messages_on_its_own(settings, clock, headers):
    fast = settings.replace(sweep_interval=timedelta(milliseconds=20))
    container = build_container(fast, clock=clock)
    container.mailboxes.import_mailboxes(
        [{"mailbox_id": m, "password": "password"} for m in ("ALICE", "BOB")]
    )
    try:
        with TestClient(create_app(fast, container)) as client:
            sent = client.post(
                "/messageexchange/ALICE/outbox",
                content=b"x",
                headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF"),
            )
            assert sent.status_code == 202
            clock.advance(timedelta(days=5, seconds=1))
            deadline = time.monotonic() + 10  # bounded wait for the background thread
            listed: list[str] = []
            while time.monotonic() < deadline and not listed:
                listed = client.get("/messageexchange/ALICE/inbox", headers=headers("ALICE")).json()[
                    "messages"
                ]
                time.sleep(0.02)
            assert len(listed) == 1
            report = client.get(f"/messageexchange/ALICE/inbox/{listed[0]}", headers=headers("ALICE"))
            assert report.headers["mex-messagetype"] == "REPORT"
            assert report.headers["mex-linkedmsgid"] == sent.json()["message_id"]
            assert report.headers["mex-statuscode"] == "14"
    finally:
        container.close()


def test_orphan_payloads_from_a_crash_are_removed_after_the_grace_period(container, clock):
    old_id = new_message_id(clock.now())
    old_key = chunk_key(old_id, 1)
    container.payloads.put(old_key, [b"never committed"])
    clock.advance(timedelta(minutes=30))
    young_key = chunk_key(new_message_id(clock.now()), 1)
    container.payloads.put(young_key, [b"upload in flight"])

    clock.advance(timedelta(minutes=31))
    assert container.maintenance.remove_orphans() == 1

    with pytest.raises(PayloadMissing):
        list(container.payloads.open(old_key))
    assert b"".join(container.payloads.open(young_key)) == b"upload in flight"


def test_committed_messages_are_never_treated_as_orphans(container, clock, client, headers):
    sent = client.post(
        "/messageexchange/ALICE/outbox",
        content=b"keep me",
        headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF"),
    )
    clock.advance(timedelta(days=2))
    assert container.maintenance.remove_orphans() == 0
    got = client.get(f"/messageexchange/BOB/inbox/{sent.json()['message_id']}", headers=headers("BOB"))
    assert got.content == b"keep me"


def test_upload_streaming_longer_than_the_grace_period_is_not_an_orphan(container, clock):
    """A first chunk's id is made before its body streams; a slow body must not be swept away."""
    plan = container.sending.plan_send(
        MailboxPrincipal(container.mailboxes.get("ALICE")),
        SendRequest("BOB", "", ChunkRange(1, 1), Metadata(workflow_id="WF")),
    )

    def slow_body():
        yield b"first half, "
        clock.advance(ORPHAN_GRACE + timedelta(minutes=1))
        container.maintenance.sweep()
        yield b"second half"

    message = container.sending.store_first_chunk(plan, slow_body())
    found = container.receiving.download(
        MailboxPrincipal(container.mailboxes.get("BOB")), message.message_id, 1
    )
    assert b"".join(container.receiving.open_chunk(found)) == b"first half, second half"


def test_a_long_upload_committing_now_is_not_taken_for_an_orphan(container, clock, settings, stack):
    """The send began two hours ago (old id) but its payload was written just now: keep it."""
    key = chunk_key(new_message_id(clock.now() - timedelta(hours=2)), 1)
    container.payloads.put(key, [b"streamed for two hours"])  # written now

    assert container.maintenance.remove_orphans() == 0
    assert b"".join(container.payloads.open(key)) == b"streamed for two hours"

    if stack != "sqlite":
        return  # backdating the write below needs the filesystem store
    # once the directory has not been written for longer than the grace period, it goes
    message_dir = settings.data_dir / "payloads" / "objects" / key[:8] / key.split("/")[0]
    stale = (clock.now() - timedelta(hours=1, minutes=1)).timestamp()
    os.utime(message_dir, (stale, stale))
    assert container.maintenance.remove_orphans() == 1
