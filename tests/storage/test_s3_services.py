"""The whole life of a payload on the S3 store, through the in-process app and the sweep: objects
appear when a chunk is accepted and go when the message is purged, and failed or abandoned
uploads leave nothing behind. (SQLite metadata here; the PostgreSQL stack runs the web and
services suites on S3 too.)"""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailroom.domain.messages import ChunkRange, Metadata
from mailroom.errors import PayloadTooLarge
from mailroom.ids import new_message_id
from mailroom.services import maintenance
from mailroom.services.authentication import MailboxPrincipal
from mailroom.services.sending import SendRequest
from mailroom.storage.payloads import chunk_key
from mailroom.storage.payloads.s3 import S3PayloadStore

from ._streams import MIB, pieces

pytestmark = pytest.mark.s3


@pytest.fixture
def settings(settings, s3_server):
    """The shared test settings with payloads in a fresh bucket of moto's server (every chunk in
    the bucket: small ones kept in their row are covered in tests/services/test_inline_chunks.py)."""
    return s3_server.settings(settings, prefix="svc", max_chunk_bytes=6 * MIB, inline_payload_bytes=0)


def send_chunked(client, headers, chunks: list[bytes]) -> str:
    total = len(chunks)
    first = client.post(
        "/messageexchange/ALICE/outbox",
        content=chunks[0],
        headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF1", mex_chunk_range=f"1:{total}"),
    )
    assert first.status_code == 202, first.text
    message_id = str(first.json()["message_id"])
    for number, body in enumerate(chunks[1:], 2):
        sent = client.post(
            f"/messageexchange/ALICE/outbox/{message_id}/{number}",
            content=body,
            headers=headers("ALICE", mex_chunk_range=f"{number}:{total}"),
        )
        assert sent.status_code == 202, sent.text
    return message_id


def objects_of(s3_server, settings, message_id: str) -> list[str]:
    return [key for key in s3_server.keys(settings.s3_bucket) if key.startswith(f"svc/{message_id}/")]


def test_chunked_message_lives_in_the_bucket_until_purged(
    client, headers, container, clock, settings, s3_server
):
    assert isinstance(container.payloads, S3PayloadStore)  # chosen by the factory from settings
    big = b"".join(pieces(5 * MIB + 123))  # more than one part: a multipart upload
    message_id = send_chunked(client, headers, [big, b"second chunk"])
    assert len(objects_of(s3_server, settings, message_id)) == 2

    first = client.get(f"/messageexchange/BOB/inbox/{message_id}/1", headers=headers("BOB"))
    second = client.get(f"/messageexchange/BOB/inbox/{message_id}/2", headers=headers("BOB"))
    assert (first.status_code, second.status_code) == (206, 200)
    assert first.content == big
    assert second.content == b"second chunk"
    acked = client.put(f"/messageexchange/BOB/inbox/{message_id}/status/acknowledged", headers=headers("BOB"))
    assert acked.status_code == 200

    clock.advance(settings.payload_retention - timedelta(seconds=1))
    assert container.maintenance.sweep().purged == 0
    assert len(objects_of(s3_server, settings, message_id)) == 2
    clock.advance(timedelta(seconds=1))
    assert container.maintenance.sweep().purged == 1
    assert objects_of(s3_server, settings, message_id) == []


def test_a_chunk_over_the_limit_leaves_no_object_and_no_open_upload(container, settings, s3_server):
    """The body streams in (as from a socket) past the limit after a part has been sent."""
    calls: list[str] = []
    container.payloads.client.meta.events.register(
        "before-call.s3", lambda model, **_: calls.append(model.name)
    )
    alice = MailboxPrincipal(container.mailboxes.get("ALICE"))
    request = SendRequest(
        recipient_id="BOB", sender_claim="", chunks=ChunkRange(1, 1), meta=Metadata(workflow_id="WF1")
    )
    plan = container.sending.plan_send(alice, request)
    with pytest.raises(PayloadTooLarge):
        container.sending.store_first_chunk(plan, pieces(7 * MIB))
    assert calls == ["CreateMultipartUpload", "UploadPart", "AbortMultipartUpload"]
    assert s3_server.keys(settings.s3_bucket) == []
    assert s3_server.open_uploads(settings.s3_bucket) == []
    bob = MailboxPrincipal(container.mailboxes.get("BOB"))
    assert container.receiving.inbox(bob, limit=10).message_ids == []


def test_sweep_removes_orphans_and_aborts_uploads_cut_off_by_a_crash(container, clock, settings, s3_server):
    store = container.payloads
    orphan = chunk_key(new_message_id(clock.now()), 1)
    store.put(orphan, [b"its row never committed"])
    crashed = f"svc/{chunk_key(new_message_id(clock.now()), 1)}"
    s3_server.client.create_multipart_upload(Bucket=settings.s3_bucket, Key=crashed)

    clock.advance(maintenance.ORPHAN_GRACE + timedelta(minutes=1))
    result = container.maintenance.sweep()

    assert result.orphans == 1
    assert s3_server.keys(settings.s3_bucket) == []
    # moto dates every upload 2010, so this one is already older than the grace period
    assert s3_server.open_uploads(settings.s3_bucket) == []
