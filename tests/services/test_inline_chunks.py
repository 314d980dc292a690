"""Small chunks kept in their database row (Settings.inline_payload_bytes), on both stacks:
stored with the message's commit, nothing in the payload store, downloaded, replaced when
re-sent, purged with the message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.conftest import MAILBOXES

from mailroom.domain.messages import ChunkRange, Metadata
from mailroom.errors import Gone
from mailroom.services.authentication import MailboxPrincipal
from mailroom.services.sending import SendRequest
from mailroom.settings import AfterAck
from mailroom.storage.payloads import PayloadMissing
from mailroom.storage.repos import messages


def principal(container, mailbox_id):
    return MailboxPrincipal(container.mailboxes.get(mailbox_id))


def start(container, body, total=1):
    request = SendRequest("BOB", "", ChunkRange(1, total), Metadata(workflow_id="WF"))
    plan = container.sending.plan_send(principal(container, "ALICE"), request)
    return container.sending.store_first_chunk(plan, [body]).message_id


def chunk_row(container, message_id, number=1):
    with container.db.read() as conn:
        found = messages.get_chunk(conn, message_id, number)
    assert found is not None
    return found


def download(container, message_id, number=1):
    found = container.receiving.download(principal(container, "BOB"), message_id, number)
    return b"".join(container.receiving.open_chunk(found))


def stored_payloads(container):
    return set(container.payloads.message_ids())


def test_a_small_message_is_kept_in_its_row_and_downloads(container):
    assert container.settings.inline_payload_bytes == 64 * 1024
    body = b"x" * (64 * 1024)
    message_id = start(container, body)
    row = chunk_row(container, message_id)
    assert row.inline
    assert row.data == body
    assert row.size == len(body)
    assert message_id not in stored_payloads(container)
    assert download(container, message_id) == body


def test_a_larger_chunk_goes_to_the_payload_store(container):
    body = b"y" * (64 * 1024 + 1)
    message_id = start(container, body)
    row = chunk_row(container, message_id)
    assert not row.inline
    assert row.data is None
    assert message_id in stored_payloads(container)
    assert download(container, message_id) == body


def test_zero_keeps_every_chunk_in_the_payload_store(settings, fresh_container):
    container = fresh_container(settings.replace(inline_payload_bytes=0))
    try:
        for mailbox in MAILBOXES:
            container.mailboxes.add(mailbox)
        message_id = start(container, b"small")
        assert not chunk_row(container, message_id).inline
        assert download(container, message_id) == b"small"
    finally:
        container.close()


def test_chunks_of_both_kinds_and_a_resent_chunk(container):
    message_id = start(container, b"one;", total=3)
    alice = principal(container, "ALICE")
    big = b"z" * (64 * 1024 + 10)
    replaced = None
    for number, body in [(2, big), (2, b"two;"), (3, b"three")]:  # chunk 2 re-sent, smaller
        plan = container.sending.plan_chunk(alice, message_id, ChunkRange(number, 3), "")
        container.sending.store_chunk(alice, plan, [body])
        replaced = replaced or chunk_row(container, message_id, 2).payload_key
    assert replaced
    assert [chunk_row(container, message_id, n).inline for n in (1, 2, 3)] == [True, True, True]
    with pytest.raises(PayloadMissing):  # the payload the re-sent chunk replaced was deleted
        list(container.payloads.open(replaced))
    assert b"".join(download(container, message_id, n) for n in (1, 2, 3)) == b"one;two;three"


def test_purged_with_its_message(settings, fresh_container, clock):
    container = fresh_container(settings.replace(download_after_ack=AfterAck.ALLOW))
    try:
        for mailbox in MAILBOXES:
            container.mailboxes.add(mailbox)
        message_id = start(container, b"read and gone")
        container.receiving.acknowledge(principal(container, "BOB"), message_id)
        assert download(container, message_id) == b"read and gone"
        clock.advance(container.settings.payload_retention + timedelta(seconds=1))
        assert container.maintenance.sweep().purged == 1
        assert chunk_row(container, message_id).data is None
        with pytest.raises(Gone):
            download(container, message_id)
    finally:
        container.close()
