"""The JSON messaging API's service over the one store: envelopes, deliveries, attachments
stored once, crossing to and from the MESH face, read flags, links, idempotency and clean-up."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import os
import shutil
import subprocess
from datetime import timedelta
from typing import Any

import anyio
import pytest

from mailroom.domain.envelopes import Box, Compose, DeliveryState, Face, ListQuery
from mailroom.domain.messages import ChunkRange, MessageStatus, Metadata
from mailroom.errors import (
    Conflict,
    LinkRefused,
    NotFound,
    PermissionDenied,
    RangeNotSatisfiable,
    ValidationFailed,
)
from mailroom.services.admin_messages import MessageAdmin
from mailroom.services.api_tokens import ApiPrincipal
from mailroom.services.authentication import MailboxPrincipal
from mailroom.services.sending import SendRequest

ALICE = ApiPrincipal("ALICE", read_only=False, login_id="l-alice")
BOB = ApiPrincipal("BOB", read_only=False, login_id="l-bob")
BARRY = ApiPrincipal("BARRY", read_only=False, login_id="l-barry")
BIG = os.urandom(200_000)  # past inline_payload_bytes: a payload file or object of its own


def run(function: Any, *args: Any, **kwargs: Any) -> Any:
    async def call() -> Any:
        return await function(*args, **kwargs)

    return anyio.run(call)


def stage(container, name="report.pdf", data=BIG, owner=ALICE, content_type="application/pdf"):
    return container.messaging.stage_attachment(owner, name, content_type, [data[:1000], data[1000:]])


def submit(container, recipients=("BOB",), *, body="", subject="Results", attachments=(), key=None):
    compose = Compose(
        recipients=list(recipients),
        subject=subject,
        body=body,
        attachment_ids=[a.attachment_id for a in attachments],
        idempotency_key=key,
        face=Face.MFT,
    )
    return run(container.messaging.submit, ALICE, compose)


def mesh(container, mailbox_id):
    return MailboxPrincipal(container.mailboxes.get(mailbox_id))


def mesh_inbox(container, mailbox_id):
    return container.receiving.inbox(mesh(container, mailbox_id), limit=100).message_ids


def mesh_download(container, mailbox_id, message_id):
    found = container.receiving.download(mesh(container, mailbox_id), message_id, 1)
    return found, b"".join(container.receiving.open_chunk(found))


def mesh_send(container, body=b"mesh payload", **meta):
    request = SendRequest("BOB", "", ChunkRange(1, 1), Metadata(workflow_id="WF", **meta))
    return container.sending.send(mesh(container, "ALICE"), request, [body])


def open_link(container, link, byte_range=None):
    found = container.messaging.open_link(link.token, byte_range)
    return found, b"".join(found.pieces)


def test_one_attachment_to_two_recipients_is_stored_once_and_is_the_mesh_payload(container):
    attachment = stage(container)
    sent = submit(container, ["bob", "BARRY"], attachments=[attachment])

    assert len(sent.message_ids) == 2
    assert sent.message_ids[0] == sent.envelope_id
    assert list(container.payloads.message_ids()) == [attachment.attachment_id]
    for mailbox, message_id in zip(["BOB", "BARRY"], sent.message_ids, strict=True):
        assert mesh_inbox(container, mailbox) == [message_id]
        found, data = mesh_download(container, mailbox, message_id)
        assert data == BIG
        assert found.message.meta.file_name == "report.pdf"
        assert found.message.meta.content_type == "application/pdf"
        assert found.message.meta.subject == "Results"
        assert found.message.file_size == len(BIG)


def test_a_body_and_attachments_reach_mesh_as_one_multipart_mixed_document(container):
    first = stage(container, "a.bin", b"\x00\x01binary")
    second = stage(container, 'we"ird; name=x.txt', BIG, content_type="text/plain")
    sent = submit(container, body="Dear Bob,\nsee attached. £5", attachments=[first, second])

    found, data = mesh_download(container, "BOB", sent.message_ids[0])
    assert len(data) == found.message.file_size
    parsed = email.message_from_bytes(
        b"Content-Type: " + found.message.meta.content_type.encode() + b"\r\n\r\n" + data,
        policy=email.policy.default,
    )
    parts = list(parsed.iter_parts())
    assert parts[0].get_content().strip() == "Dear Bob,\nsee attached. £5"
    assert [p.get_filename() for p in parts[1:]] == ["a.bin", 'we"ird; name=x.txt']
    assert parts[1].get_content() == b"\x00\x01binary"
    assert parts[2].get_payload(decode=True) == BIG


def test_a_mesh_message_is_read_here_as_one_attachment_named_by_its_file_name(container):
    original = mesh_send(container, subject="Lab results", file_name="results.csv", content_type="text/csv")

    page = run(container.messaging.inbox, BOB, ListQuery())
    assert page.total == 1
    [view] = page.items
    assert (view.message_id, view.subject, view.body, view.face) == (
        original.message_id,
        "Lab results",
        "",
        Face.MESH,
    )
    [attachment] = view.attachments
    assert (attachment.name, attachment.content_type, attachment.size) == ("results.csv", "text/csv", 12)

    [link] = run(container.messaging.attachment_links, BOB, original.message_id, incoming=True)
    found, data = open_link(container, link)
    assert data == b"mesh payload"
    assert found.name == "results.csv"
    ranged, part = open_link(container, link, (5, 11))
    assert part == b"payload"
    assert (ranged.start, ranged.end, ranged.size) == (5, 12, 12)
    _, tail = open_link(container, link, (None, 4))
    assert tail == b"load"
    with pytest.raises(RangeNotSatisfiable):
        container.messaging.open_link(link.token, (12, None))


def test_acknowledging_on_mesh_delivers_here_and_deleting_here_acknowledges_on_mesh(container):
    first = submit(container, body="one")
    second = submit(container, body="two")

    container.receiving.acknowledge(mesh(container, "BOB"), first.message_ids[0])
    view = run(container.messaging.sent, ALICE, first.envelope_id)
    assert view.deliveries[0].state is DeliveryState.ACKNOWLEDGED

    assert run(container.messaging.delete_received, BOB, [f"<{second.message_ids[0]}>"]) == [
        second.message_ids[0]
    ]
    assert mesh_inbox(container, "BOB") == []
    tracked = container.tracking.by_message_id(mesh(container, "ALICE"), second.message_ids[0])
    assert tracked.status is MessageStatus.ACKNOWLEDGED
    assert run(container.messaging.inbox, BOB, ListQuery()).total == 0


def test_read_flags_hide_read_messages_from_lists_that_do_not_fetch_all(container):
    sent = submit(container, body="hello")
    unread = ListQuery(fetch_all=False)
    assert run(container.messaging.inbox, BOB, unread).total == 1

    view = run(container.messaging.received, BOB, sent.message_ids[0], mark_read=True)
    assert view.read
    assert view.body == "hello"
    assert run(container.messaging.inbox, BOB, unread).total == 0
    assert run(container.messaging.inbox, BOB, ListQuery(fetch_all=True)).total == 1
    state = run(container.messaging.sent, ALICE, sent.envelope_id).deliveries[0].state
    assert state is DeliveryState.DELIVERED

    run(container.messaging.set_read, BOB, sent.message_ids[0], False)
    assert run(container.messaging.inbox, BOB, unread).total == 1


def test_an_idempotency_key_answers_a_retry_with_the_first_message(container):
    first = submit(container, body="once", key="retry-1")
    again = submit(container, body="once", key="retry-1")
    assert again.replayed
    assert again.envelope_id == first.envelope_id
    replay = container.messaging.replay
    assert run(replay, ALICE, "retry-1", ["bob"], "Results").envelope_id == first.envelope_id
    assert run(replay, ALICE, "retry-2", ["BOB"], "Results") is None
    for recipients, subject in ((["BARRY"], "Results"), (["BOB", "BARRY"], "Results"), (["BOB"], "Other")):
        with pytest.raises(Conflict):  # what a retry says before its body must match the first
            run(replay, ALICE, "retry-1", recipients, subject)
    assert mesh_inbox(container, "BOB") == first.message_ids
    with pytest.raises(Conflict):
        submit(container, body="something else", key="retry-1")


def test_unknown_recipients_are_skipped_and_named_and_none_left_is_refused(container):
    sent = submit(container, ["BOB", "NOBODY", "bob"], body="hi")
    assert sent.skipped == ["NOBODY"]
    assert len(sent.message_ids) == 1
    with pytest.raises(ValidationFailed):
        submit(container, ["NOBODY"], body="hi")
    with pytest.raises(ValidationFailed):
        submit(container, ["BOB"], body="")  # neither a body nor an attachment


def test_a_mailbox_sees_only_its_own_messages_and_attachments(container):
    attachment = stage(container)
    sent = submit(container, attachments=[attachment])
    with pytest.raises(NotFound):
        run(container.messaging.received, BARRY, sent.message_ids[0], mark_read=True)
    with pytest.raises(NotFound):
        run(container.messaging.sent, BOB, sent.envelope_id)
    with pytest.raises(NotFound):
        run(container.messaging.attachment_links, BARRY, sent.message_ids[0], incoming=True)
    assert run(container.messaging.inbox, BARRY, ListQuery()).total == 0
    with pytest.raises(ValidationFailed):  # another mailbox's upload cannot be attached
        run(
            container.messaging.submit,
            BARRY,
            Compose(["BOB"], "s", "", attachment_ids=[attachment.attachment_id]),
        )


def test_links_work_for_their_lifetime_only_and_refuse_any_change(container, clock):
    sent = submit(container, attachments=[stage(container)])
    [link] = run(container.messaging.attachment_links, BOB, sent.message_ids[0], incoming=True)
    assert open_link(container, link)[1] == BIG
    for index in (0, len(link.token) // 2, len(link.token) - 1):
        changed = link.token[:index] + ("A" if link.token[index] != "A" else "B") + link.token[index + 1 :]
        with pytest.raises(LinkRefused):
            container.messaging.open_link(changed)
    clock.advance(timedelta(minutes=10, seconds=1))
    with pytest.raises(LinkRefused):
        container.messaging.open_link(link.token)


def test_outbox_lists_by_state_and_a_sender_may_hide_a_sent_message(container, clock):
    sent = submit(container, ["BOB", "BARRY"], body="x")
    assert run(container.messaging.outbox, ALICE, Box.SENT, ListQuery()).total == 1
    assert run(container.messaging.outbox, ALICE, Box.FAILED, ListQuery()).total == 0
    clock.advance(timedelta(days=1, seconds=1))
    assert run(container.messaging.outbox, ALICE, Box.INCOMPLETE, ListQuery()).total == 1
    clock.advance(timedelta(days=5))
    container.maintenance.sweep()
    failed = run(container.messaging.outbox, ALICE, Box.FAILED, ListQuery())
    assert [v.message_id for v in failed.items] == [sent.envelope_id]
    assert {d.state for d in failed.items[0].deliveries} == {DeliveryState.FAILED}

    assert run(container.messaging.delete_sent, ALICE, sent.envelope_id) == sent.envelope_id
    assert run(container.messaging.outbox, ALICE, Box.FAILED, ListQuery()).total == 0


def test_a_message_retrieved_here_does_not_expire_but_an_unretrieved_one_does(container, clock):
    kept = submit(container, body="read me")
    left = submit(container, body="ignored")
    run(container.messaging.received, BOB, kept.message_ids[0], mark_read=True)
    clock.advance(timedelta(days=6))
    result = container.maintenance.sweep()
    assert result.expired == left.message_ids
    assert run(container.messaging.inbox, BOB, ListQuery()).total == 1


def test_shared_attachment_bytes_are_purged_only_when_every_delivery_is(container, clock):
    attachment = stage(container)
    sent = submit(container, ["BOB", "BARRY"], attachments=[attachment])
    run(container.messaging.delete_received, BOB, [sent.message_ids[0]])
    run(container.messaging.received, BARRY, sent.message_ids[1], mark_read=True)  # kept: no expiry
    clock.advance(timedelta(days=31))
    container.maintenance.sweep()
    assert list(container.payloads.message_ids()) == [attachment.attachment_id]  # BARRY's still waits
    assert mesh_download(container, "BARRY", sent.message_ids[1])[1] == BIG

    run(container.messaging.delete_received, BARRY, [sent.message_ids[1]])
    clock.advance(timedelta(days=31))
    result = container.maintenance.sweep()
    assert result.attachments_purged == 1
    assert list(container.payloads.message_ids()) == []


def test_an_unused_upload_is_removed_and_a_used_one_survives_the_orphan_scan(container, clock):
    unused = stage(container, "unused.bin")
    used = stage(container, "used.bin")
    submit(container, attachments=[used])
    clock.advance(timedelta(days=2))
    result = container.maintenance.sweep()
    assert result.staged_removed == 1
    assert result.orphans == 0
    assert list(container.payloads.message_ids()) == [used.attachment_id]
    assert unused.attachment_id not in list(container.payloads.message_ids())


def test_a_read_only_token_reads_but_writes_nothing(container):
    sent = submit(container, body="hi")
    reader = ApiPrincipal("BOB", read_only=True, login_id="l-ro")
    view = run(container.messaging.received, reader, sent.message_ids[0], mark_read=True)
    assert not view.read  # a read-only token does not mark
    with pytest.raises(PermissionDenied):
        run(container.messaging.delete_received, reader, [sent.message_ids[0]])
    with pytest.raises(PermissionDenied):
        run(container.messaging.submit, reader, Compose(["ALICE"], "s", "b"))
    with pytest.raises(PermissionDenied):
        container.messaging.stage_attachment(reader, "x", "", [b"x"])


@pytest.mark.parametrize("name", ["", "a\r\nb", "a\x00b", "x" * 301])
def test_an_attachment_name_that_cannot_be_stored_safely_is_refused(container, name):
    with pytest.raises(ValidationFailed):
        container.messaging.stage_attachment(ALICE, name, "", [b"x"])
    assert list(container.payloads.message_ids()) == []


def test_filters_and_paging_of_the_inbox(container, clock):
    ids = []
    for n in range(5):
        ids.append(submit(container, subject=f"Subject {n}", body="b").message_ids[0])
        clock.advance(timedelta(seconds=1))
    newest = run(container.messaging.inbox, BOB, ListQuery(limit=2))
    assert [v.message_id for v in newest.items] == ids[::-1][:2]
    assert newest.total == 5
    oldest = run(container.messaging.inbox, BOB, ListQuery(descending=False, limit=2, offset=1))
    assert [v.message_id for v in oldest.items] == ids[1:3]
    assert run(container.messaging.inbox, BOB, ListQuery(subject="subject 3")).total == 1
    assert run(container.messaging.inbox, BOB, ListQuery(partner="alice")).total == 5
    assert run(container.messaging.inbox, BOB, ListQuery(partner="BARRY")).total == 0
    assert run(container.messaging.inbox, BOB, ListQuery(station="ALICE")).total == 0
    assert run(container.messaging.inbox, BOB, ListQuery(message_id=ids[2].lower())).total == 1


def verify_with_openssl(entity: bytes, tmp_path, name="receipt.eml") -> subprocess.CompletedProcess[bytes]:
    path = tmp_path / name
    path.write_bytes(entity)
    return subprocess.run(
        ["openssl", "smime", "-verify", "-noverify", "-in", str(path)], capture_output=True, check=False
    )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_delivered_message_has_a_signed_receipt_both_sides_can_fetch(container, tmp_path):
    attachment = stage(container)
    sent = submit(container, attachments=[attachment])
    with pytest.raises(NotFound):  # not retrieved yet: no receipt
        run(container.messaging.receipt_link, ALICE, sent.envelope_id, incoming=False)
    run(container.messaging.received, BOB, sent.message_ids[0], mark_read=True)

    link = run(container.messaging.receipt_link, ALICE, sent.envelope_id, incoming=False)
    found, body = open_link(container, link)
    assert found.content_type.startswith('multipart/signed; protocol="application/pkcs7-signature"')
    entity = f"Content-Type: {found.content_type}\r\n\r\n".encode() + body
    checked = verify_with_openssl(entity, tmp_path)
    assert checked.returncode == 0, checked.stderr
    report = checked.stdout.decode()
    assert f"Original-Message-ID: <{sent.message_ids[0]}>" in report
    assert "Disposition: automatic-action/MDN-sent-automatically; processed" in report
    mic = base64.b64encode(hashlib.sha256(BIG).digest()).decode()
    assert f"Received-Content-MIC: {mic}, sha-256" in report

    again = run(container.messaging.receipt_link, BOB, sent.message_ids[0], incoming=True)
    assert open_link(container, again)[1] == body  # signed once, the same document for both

    forged = entity.replace(b"processed", b"processeD")
    assert verify_with_openssl(forged, tmp_path, "forged.eml").returncode != 0


def test_a_receipt_link_opens_nothing_once_its_message_is_deleted(container, clock):
    sent = submit(container, ["BOB", "BARRY"], body="x")
    run(container.messaging.received, BOB, sent.message_ids[0], mark_read=True)
    run(container.messaging.received, BARRY, sent.message_ids[1], mark_read=True)
    mine = run(container.messaging.receipt_link, BOB, sent.message_ids[0], incoming=True)
    theirs = run(container.messaging.receipt_link, BARRY, sent.message_ids[1], incoming=True)
    assert open_link(container, mine)[1]
    MessageAdmin(container.settings, container.db, container.payloads, clock).delete(sent.message_ids[0])
    with pytest.raises(LinkRefused):  # its delivery is no longer kept: the link opens nothing
        container.messaging.open_link(mine.token)
    assert open_link(container, theirs)[1]  # the other recipient's receipt still opens


def test_every_server_process_signs_receipts_with_the_same_key(container, settings, fresh_container):
    other = fresh_container(settings)
    try:
        first = container.messaging._receipts.certificate()
        assert other.messaging._receipts.certificate() == first
    finally:
        other.close()
