"""Expiry as real MESH does it (spec §6.3), driven by an injected clock instead of waiting days."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.conftest import MAILBOXES

from mailroom.domain.messages import ChunkRange, MessageStatus, MessageType, Metadata
from mailroom.errors import Gone, NotFound
from mailroom.services.authentication import MailboxPrincipal
from mailroom.services.receiving import Download
from mailroom.services.sending import SendRequest
from mailroom.storage.payloads import PayloadMissing


def principal(container, mailbox_id):
    return MailboxPrincipal(container.mailboxes.get(mailbox_id))


def send(container, sender="ALICE", recipient="BOB", body=b"payload", **meta):
    request = SendRequest(
        recipient_id=recipient,
        sender_claim="",
        chunks=ChunkRange(1, 1),
        meta=Metadata(workflow_id=meta.pop("workflow_id", "WF"), **meta),
    )
    plan = container.sending.plan_send(principal(container, sender), request)
    return container.sending.store_first_chunk(plan, [body])


def inbox(container, mailbox_id):
    return container.receiving.inbox(principal(container, mailbox_id), limit=500).message_ids


def test_message_not_acknowledged_within_retention_expires_with_report_to_sender(container, clock):
    original = send(container, local_id="LOCAL-1", subject="results", workflow_id="PATH_RESULTS")
    clock.advance(timedelta(days=5) - timedelta(seconds=1))
    assert container.maintenance.sweep().expired == []
    assert inbox(container, "BOB") == [original.message_id]

    clock.advance(timedelta(seconds=1))
    result = container.maintenance.sweep()

    assert result.expired == [original.message_id]
    assert inbox(container, "BOB") == []
    tracked = container.tracking.by_message_id(principal(container, "ALICE"), original.message_id)
    assert tracked.status is MessageStatus.UNDELIVERABLE
    assert tracked.detail.code == "14"

    [report_id] = inbox(container, "ALICE")
    found = container.receiving.download(principal(container, "ALICE"), report_id, 1)
    assert isinstance(found, Download)
    report = found.message
    assert report.message_type is MessageType.REPORT
    assert found.chunk is None
    assert report.detail.code == "14"
    assert report.detail.event == "SEND"
    assert report.detail.description == "Message not collected by recipient after 5 days"
    assert report.detail.linked_message_id == original.message_id
    assert report.meta.workflow_id == "PATH_RESULTS"
    assert report.meta.local_id == "LOCAL-1"
    assert report.meta.subject == "results"
    assert report.recipient.mailbox_id == "ALICE"
    assert report.sender.mailbox_id == ""


def test_expired_message_can_no_longer_be_downloaded(container, clock):
    original = send(container)
    clock.advance(timedelta(days=6))
    container.maintenance.sweep()
    with pytest.raises(Gone):
        container.receiving.download(principal(container, "BOB"), original.message_id, 1)


def test_acknowledged_message_never_expires(container, clock):
    original = send(container)
    container.receiving.acknowledge(principal(container, "BOB"), original.message_id)
    clock.advance(timedelta(days=10))
    assert container.maintenance.sweep().expired == []
    assert inbox(container, "ALICE") == []


def test_each_message_is_expired_and_reported_exactly_once(container, clock):
    ids = {send(container).message_id for _ in range(3)}
    clock.advance(timedelta(days=5))
    first = container.maintenance.sweep()
    second = container.maintenance.sweep()
    assert set(first.expired) == ids
    assert second.expired == []
    assert len(inbox(container, "ALICE")) == 3


def test_reports_themselves_do_not_expire_into_more_reports(container, clock):
    send(container)
    clock.advance(timedelta(days=5))
    container.maintenance.sweep()
    clock.advance(timedelta(days=20))
    assert container.maintenance.sweep().expired == []
    assert len(inbox(container, "ALICE")) == 1


def test_deactivated_recipient_gets_the_deactivated_wording(container, clock):
    send(container)
    container.mailboxes.set_active("BOB", False)
    clock.advance(timedelta(days=5))
    container.maintenance.sweep()
    [report_id] = inbox(container, "ALICE")
    report = container.receiving.download(principal(container, "ALICE"), report_id, 1).message
    assert report.detail.description == "Message was not collected as the mailbox is deactivated"


def test_retention_is_a_setting(container, settings, clock):
    from mailroom.container import build_container

    short = build_container(settings.replace(inbox_retention=timedelta(hours=1)), clock=clock)
    try:
        original = send(short)
        clock.advance(timedelta(hours=1))
        assert short.maintenance.sweep().expired == [original.message_id]
        [report_id] = inbox(short, "ALICE")
        report = short.receiving.download(principal(short, "ALICE"), report_id, 1).message
        assert report.detail.description == "Message not collected by recipient after 1 hour"
    finally:
        short.close()


@pytest.mark.parametrize("inline", [True, False], ids=["in-row", "payload-store"])
def test_payloads_are_purged_after_payload_retention(settings, fresh_container, clock, inline):
    container = fresh_container(settings.replace(inline_payload_bytes=64 * 1024 if inline else 0))
    for mailbox in MAILBOXES:
        container.mailboxes.add(mailbox)
    acked = send(container, body=b"acked")
    container.receiving.acknowledge(principal(container, "BOB"), acked.message_id)
    expired = send(container, body=b"expired")
    clock.advance(timedelta(days=5))
    assert container.maintenance.sweep().expired == [expired.message_id]
    fresh = send(container, body=b"fresh")  # expires at day 10, purged at day 40
    assert _chunk(container, fresh.message_id).inline is inline

    clock.advance(timedelta(days=25) - timedelta(seconds=1))  # day 30 less a second
    assert container.maintenance.sweep().purged == 0
    clock.advance(timedelta(seconds=1))  # day 30: the acknowledged one goes
    assert container.maintenance.sweep().purged == 1
    with pytest.raises(PayloadMissing):
        _stored_bytes(container, acked.message_id)
    assert _stored_bytes(container, expired.message_id) == b"expired"

    clock.advance(timedelta(days=5))  # day 35: the expired one goes
    container.maintenance.sweep()
    with pytest.raises(PayloadMissing):
        _stored_bytes(container, expired.message_id)
    assert _stored_bytes(container, fresh.message_id) == b"fresh"
    container.close()


def _chunk(container, message_id):
    from mailroom.storage.repos import messages

    with container.db.read() as conn:
        chunk = messages.get_chunk(conn, message_id, 1)
    assert chunk is not None
    return chunk


def _stored_bytes(container, message_id):
    """The chunk's bytes wherever they are kept (its row or the payload store)."""
    chunk = _chunk(container, message_id)
    if chunk.inline:
        if chunk.data is None:
            raise PayloadMissing(message_id)
        return chunk.data
    return b"".join(container.payloads.open(chunk.payload_key))


def test_abandoned_chunked_upload_fails_after_the_inbox_retention(container, clock):
    from mailroom.domain.messages import ChunkRange as Range

    request = SendRequest(
        recipient_id="BOB", sender_claim="", chunks=Range(1, 3), meta=Metadata(workflow_id="WF")
    )
    plan = container.sending.plan_send(principal(container, "ALICE"), request)
    partial = container.sending.store_first_chunk(plan, [b"part one"])
    clock.advance(timedelta(days=5) - timedelta(seconds=1))
    assert container.maintenance.sweep().abandoned == []
    clock.advance(timedelta(seconds=1))
    assert container.maintenance.sweep().abandoned == [partial.message_id]
    tracked = container.tracking.by_message_id(principal(container, "ALICE"), partial.message_id)
    assert tracked.status is MessageStatus.ERROR
    assert tracked.detail.description == "Chunked upload was not completed in time"
    assert inbox(container, "BOB") == []
    assert _stored_bytes(container, partial.message_id) == b"part one"
    clock.advance(timedelta(days=30))
    assert container.maintenance.sweep().purged == 1
    with pytest.raises(PayloadMissing):
        _stored_bytes(container, partial.message_id)


def test_a_payload_the_store_refuses_to_delete_stops_no_other_purge(
    settings, fresh_container, clock, monkeypatch
):
    container = fresh_container(settings.replace(inline_payload_bytes=0))
    for mailbox in MAILBOXES:
        container.mailboxes.add(mailbox)
    stuck, freed = send(container, body=b"stuck"), send(container, body=b"freed")
    for message in (stuck, freed):
        container.receiving.acknowledge(principal(container, "BOB"), message.message_id)
    clock.advance(settings.payload_retention + timedelta(seconds=1))
    real_delete = container.payloads.delete_message

    def refusing(message_id: str) -> None:
        if message_id == stuck.message_id:
            raise OSError("permission denied")
        real_delete(message_id)

    monkeypatch.setattr(container.payloads, "delete_message", refusing)  # the maintenance's store
    result = container.maintenance.sweep()
    assert (result.purged, result.purge_failed) == (1, 1)
    with pytest.raises(PayloadMissing):
        _stored_bytes(container, freed.message_id)
    assert _stored_bytes(container, stuck.message_id) == b"stuck"
    monkeypatch.undo()
    assert container.maintenance.sweep().purged == 1  # tried again, and gone


def test_finished_messages_rows_go_after_the_metadata_retention(settings, fresh_container, clock):
    container = fresh_container(settings.replace(metadata_retention=timedelta(days=60)))
    for mailbox in MAILBOXES:
        container.mailboxes.add(mailbox)
    acked = send(container, body=b"acked")
    container.receiving.acknowledge(principal(container, "BOB"), acked.message_id)
    waiting = send(container, body=b"waiting", workflow_id="OTHER")
    clock.advance(timedelta(days=30, seconds=1))  # the payload retention: purged, rows kept
    container.maintenance.sweep()  # also expires ``waiting`` (day 5), with a report to ALICE
    assert (
        container.tracking.by_message_id(principal(container, "ALICE"), acked.message_id).message_id
        == acked.message_id
    )
    clock.advance(timedelta(days=30))  # day 60 since the acknowledgement
    assert container.maintenance.sweep().forgotten == 1
    with pytest.raises(NotFound):
        container.tracking.by_message_id(principal(container, "ALICE"), acked.message_id)
    # expired by the sweep of day 30, purged by that of day 60: its rows stay until day 90
    assert container.tracking.by_message_id(principal(container, "ALICE"), waiting.message_id)
    clock.advance(timedelta(days=35))
    assert container.maintenance.sweep().forgotten >= 1
    with pytest.raises(NotFound):
        container.tracking.by_message_id(principal(container, "ALICE"), waiting.message_id)
