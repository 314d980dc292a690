"""storage/hot.py: prepared statements on the driver agree with SQLAlchemy Core, both ways, on
both databases, and hot transactions commit or roll back as ``Database.write`` does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from mailroom.domain.messages import (
    Message,
    MessageStatus,
    MessageType,
    Metadata,
    Party,
    StatusDetail,
)
from mailroom.ids import new_message_id
from mailroom.storage.repos import messages as repo
from mailroom.storage.repos.messages import ChunkRow, InboxPosition, to_message
from mailroom.storage.tables import messages


def a_message(at: datetime, recipient: str = "BOB") -> Message:
    return Message(
        message_id=new_message_id(at),
        message_type=MessageType.DATA,
        sender=Party("ALICE", "Alice", "X26", "X26", "Org", "England"),
        recipient=Party(recipient, "Bob", "X26", "X26", "Org", "Wales"),
        meta=Metadata(workflow_id="WF", subject="s", encrypted=True, compressed=False),
        total_chunks=1,
        file_size=3,
        status=MessageStatus.ACCEPTED,
        detail=StatusDetail(),
        created_at=at,
        status_at=at,
        accepted_at=at,
        acknowledged_at=None,
        inbox_expires_at=at + timedelta(days=5),
    )


@pytest.mark.parametrize("microsecond", [0, 123456])
def test_hot_insert_reads_back_the_same_through_core_and_hot(container, microsecond):
    at = datetime(2026, 3, 4, 5, 6, 7, microsecond, tzinfo=timezone(timedelta(hours=2)))
    message = a_message(at)
    with container.db.hot_write() as tx:
        repo.insert_message(tx, message)
        repo.insert_chunk(tx, message.message_id, ChunkRow(1, 3, "ab" * 32, "k"), at)
    with container.db.read() as conn:
        row = conn.execute(select(messages).where(messages.c.message_id == message.message_id)).one()
    assert to_message(row) == message
    assert to_message(row).created_at.tzinfo is UTC
    with container.db.hot_read() as tx:
        assert repo.get(tx, message.message_id) == message
        assert repo.get_chunk(tx, message.message_id, 1) == ChunkRow(1, 3, "ab" * 32, "k")
        assert repo.get_chunk(tx, message.message_id, 2) is None


def test_core_insert_reads_back_the_same_through_hot(container):
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    message = a_message(at)
    with container.db.write() as conn:
        conn.execute(messages.insert(), {"message_id": message.message_id, **_core_values(message)})
    with container.db.hot_read() as tx:
        assert repo.get(tx, message.message_id) == message


def _core_values(message: Message) -> dict[str, object]:
    """The row as SQLAlchemy Core writes it (its own datetime and boolean processing)."""
    with_row = {
        "message_type": message.message_type.value,
        "status": message.status.value,
        "sender_id": message.sender.mailbox_id,
        "sender_name": message.sender.name,
        "sender_ods_code": message.sender.ods_code,
        "sender_org_code": message.sender.org_code,
        "sender_org_name": message.sender.org_name,
        "sender_billing_entity": message.sender.billing_entity,
        "recipient_id": message.recipient.mailbox_id,
        "recipient_name": message.recipient.name,
        "recipient_ods_code": message.recipient.ods_code,
        "recipient_org_code": message.recipient.org_code,
        "recipient_org_name": message.recipient.org_name,
        "recipient_billing_entity": message.recipient.billing_entity,
        "workflow_id": message.meta.workflow_id,
        "subject": message.meta.subject,
        "encrypted": message.meta.encrypted,
        "compressed": message.meta.compressed,
        "total_chunks": message.total_chunks,
        "file_size": message.file_size,
        "created_at": message.created_at,
        "status_at": message.status_at,
        "accepted_at": message.accepted_at,
        "inbox_expires_at": message.inbox_expires_at,
    }
    return with_row


def test_inbox_page_and_count_with_and_without_a_position(container):
    start = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    sent = [a_message(start + timedelta(microseconds=n % 2)) for n in range(5)]
    with container.db.hot_write() as tx:
        for message in sent:
            repo.insert_message(tx, message)
    ordered = sorted(sent, key=lambda m: (m.accepted_at, m.message_id))
    expected = [InboxPosition(m.accepted_at, m.message_id) for m in ordered]  # type: ignore[arg-type]
    with container.db.read() as conn:
        first = repo.inbox_page(conn, "BOB", after=None, limit=2)
        rest = repo.inbox_page(conn, "BOB", after=first[-1], limit=10)
        assert repo.inbox_count(conn, "BOB") == 5
        assert repo.inbox_count(conn, "ALICE") == 0
    assert first + rest == expected


def test_acknowledge_once(container):
    message = a_message(datetime(2026, 3, 4, tzinfo=UTC))
    later = datetime(2026, 3, 5, tzinfo=UTC)
    with container.db.hot_write() as tx:
        repo.insert_message(tx, message)
    with container.db.hot_write() as tx:
        assert repo.acknowledge(tx, message.message_id, later)
        assert not repo.acknowledge(tx, message.message_id, later)
    with container.db.hot_read() as tx:
        stored = repo.get(tx, message.message_id)
    assert stored is not None
    assert stored.status is MessageStatus.ACKNOWLEDGED
    assert stored.acknowledged_at == later


def test_hot_write_rolls_back_on_error(container):
    message = a_message(datetime(2026, 3, 4, tzinfo=UTC))

    def fail_midway() -> None:
        with container.db.hot_write() as tx:
            repo.insert_message(tx, message)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_midway()
    with container.db.hot_read() as tx:
        assert repo.get(tx, message.message_id) is None


def test_naive_times_are_refused(container):
    message = a_message(datetime(2026, 3, 4, tzinfo=UTC))
    naive = datetime(2026, 3, 4)
    with container.db.hot_write() as tx:
        repo.insert_message(tx, message)
        with pytest.raises(ValueError, match="naive"):
            repo.add_event(tx, message.message_id, MessageStatus.ACCEPTED, naive)
