"""Mailbox administration on both stacks: remove (refused while messages wait, or purged with
them and their payloads), update and password changes that keep the other fields, add that
refuses an existing id, and the list's counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.conftest import MAILBOXES, PASSWORD

from mailroom.domain.mailboxes import Mailbox
from mailroom.domain.messages import ChunkRange, Metadata
from mailroom.errors import Conflict, NotFound, SendRejected, ValidationFailed
from mailroom.services.authentication import MailboxPrincipal
from mailroom.services.mailboxes import MailboxChanges
from mailroom.services.sending import SendRequest
from mailroom.storage.repos import messages

BIG = b"p" * (64 * 1024 + 1)  # over Settings.inline_payload_bytes: stored in the payload store


def principal(container, mailbox_id):
    return MailboxPrincipal(container.mailboxes.get(mailbox_id))


def send(container, sender, recipient, body=b"hello", total=1):
    request = SendRequest(recipient, "", ChunkRange(1, total), Metadata(workflow_id="WF"))
    return container.sending.send(principal(container, sender), request, [body]).message_id


def stored(container, message_id):
    """(message row, chunk 1 row) or (None, None) once deleted."""
    with container.db.read() as conn:
        return messages.get(conn, message_id), messages.get_chunk(conn, message_id, 1)


def payload_ids(container):
    return set(container.payloads.message_ids())


def test_remove_is_refused_while_a_message_waits_in_its_inbox(container):
    message_id = send(container, "ALICE", "BOB")
    with pytest.raises(Conflict) as refused:
        container.mailboxes.remove("BOB")
    assert refused.value.description == "mailbox BOB has 1 message waiting in its inbox"
    assert container.mailboxes.get("BOB").mailbox_name == "TESTMB2"
    assert stored(container, message_id)[0] is not None


def test_an_upload_in_progress_blocks_removal_of_its_sender_and_recipient(container):
    send(container, "BOB", "BARRY", total=2)  # chunk 1 of 2: still uploading
    for mailbox_id in ("BOB", "BARRY"):
        held = container.mailboxes.held(mailbox_id)
        assert (held.waiting, held.uploading) == (0, 1)
        with pytest.raises(Conflict, match="1 upload in progress"):
            container.mailboxes.remove(mailbox_id)


def test_remove_once_collected_keeps_the_history_and_drops_the_registrations(container):
    message_id = send(container, "ALICE", "BOB")
    container.receiving.acknowledge(principal(container, "BOB"), message_id)
    assert [box.mailbox_id for box in container.mailboxes.workflow_receivers("RESTRICTED_WORKFLOW")] == [
        "BOB"
    ]

    removal = container.mailboxes.remove("BOB")

    assert (removal.deleted, removal.registrations, removal.sent_waiting) == ([], 2, 0)
    with pytest.raises(NotFound):
        container.mailboxes.get("BOB")
    assert container.mailboxes.workflow_receivers("RESTRICTED_WORKFLOW") == []
    tracked = container.tracking.by_message_id(principal(container, "ALICE"), message_id)
    assert (tracked.recipient.mailbox_id, tracked.status) == ("BOB", "acknowledged")
    with pytest.raises(SendRejected, match="Unregistered to address"):
        send(container, "ALICE", "BOB")


def test_purge_deletes_its_waiting_messages_and_payloads_and_nothing_else(container):
    waiting_big = send(container, "ALICE", "BOB", BIG)
    waiting_small = send(container, "BARRY", "BOB")  # its bytes are in its chunk row
    upload_to = send(container, "ALICE", "BOB", BIG, total=2)
    upload_from = send(container, "BOB", "ALICE", BIG, total=2)
    sent_by_bob = send(container, "BOB", "ALICE", BIG)  # waits in ALICE's inbox: ALICE's now
    others = send(container, "ALICE", "BARRY", BIG)
    purged = {waiting_big, waiting_small, upload_to, upload_from}
    assert payload_ids(container) >= {waiting_big, upload_to, upload_from, sent_by_bob, others}

    removal = container.mailboxes.remove("BOB", purge=True)

    assert set(removal.deleted) == purged
    assert (removal.sent_waiting, removal.payloads_left) == (1, 0)
    for message_id in purged:
        assert stored(container, message_id) == (None, None)
    assert not payload_ids(container) & purged
    assert {sent_by_bob, others} <= payload_ids(container)
    for recipient, message_id in (("ALICE", sent_by_bob), ("BARRY", others)):
        found = container.receiving.download(principal(container, recipient), message_id, 1)
        assert b"".join(container.receiving.open_chunk(found)) == BIG
    assert container.mailboxes.get("ALICE").password == PASSWORD


def test_remove_of_an_unknown_mailbox_is_not_found(container):
    with pytest.raises(NotFound, match="mailbox NOPE does not exist"):
        container.mailboxes.remove("NOPE", purge=True)


def test_update_changes_only_the_given_fields(container):
    before = container.mailboxes.get("BOB")
    after = container.mailboxes.update("BOB", MailboxChanges(ods_code="Y99", active=False))
    assert after == container.mailboxes.get("BOB")
    assert after == Mailbox(**{**before.__dict__, "ods_code": "Y99", "active": False})
    cleared = container.mailboxes.update("BOB", MailboxChanges(mailbox_name=""))
    assert (cleared.mailbox_name, cleared.ods_code, cleared.password) == ("", "Y99", PASSWORD)


def test_update_of_an_unknown_mailbox_is_not_found(container):
    with pytest.raises(NotFound, match="mailbox NOPE does not exist"):
        container.mailboxes.update("NOPE", MailboxChanges(mailbox_name="x"))


def test_update_refuses_text_a_column_cannot_hold(container):
    with pytest.raises(ValidationFailed):
        container.mailboxes.update("BOB", MailboxChanges(ods_code="x" * 101))
    assert container.mailboxes.get("BOB").ods_code == "X26"


def test_password_changes_only_the_password(container):
    before = container.mailboxes.get("BOB")
    container.mailboxes.set_password("BOB", "new one")
    assert container.mailboxes.get("BOB") == Mailbox(**{**before.__dict__, "password": "new one"})
    assert [box.mailbox_id for box in container.mailboxes.lookup("X26", "RESTRICTED_WORKFLOW")] == ["BOB"]
    with pytest.raises(ValidationFailed):
        container.mailboxes.set_password("BOB", "")
    with pytest.raises(NotFound):
        container.mailboxes.set_password("NOPE", "x")


def test_add_refuses_an_existing_mailbox_unless_told_to_replace(container):
    with pytest.raises(Conflict, match="mailbox BOB already exists"):
        container.mailboxes.add(Mailbox("BOB", "", "other"))
    assert container.mailboxes.get("BOB") == MAILBOXES[1]
    assert container.mailboxes.add(Mailbox("BOB", "", "other"), replace=True) is False
    assert container.mailboxes.get("BOB") == Mailbox("BOB", "", "other")


def test_summaries_count_waiting_messages_and_show_the_last_handshake(container, clock):
    first = send(container, "ALICE", "BOB")
    send(container, "BARRY", "BOB")
    send(container, "BOB", "BARRY")
    send(container, "ALICE", "BARRY", total=2)  # uploading: not waiting yet
    container.receiving.acknowledge(principal(container, "BARRY"), send(container, "ALICE", "BARRY"))
    container.receiving.acknowledge(principal(container, "BOB"), first)
    clock.advance(timedelta(minutes=5))
    container.mailboxes.record_handshake("BARRY")

    summaries = {s.mailbox.mailbox_id: s for s in container.mailboxes.summaries()}

    assert {mid: s.waiting for mid, s in summaries.items()} == {"ALICE": 0, "BARRY": 1, "BOB": 1}
    assert summaries["BARRY"].mailbox.last_handshake_at == clock.now()
    assert summaries["ALICE"].mailbox.last_handshake_at is None
    assert list(summaries) == ["ALICE", "BARRY", "BOB"]
