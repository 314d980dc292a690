"""``mailroom db migrate-data``: an embedded installation (SQLite and payload files) copied into
PostgreSQL and S3, verified, and safe to run again or to resume."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select
from tests.conftest import MAILBOXES, SHARED_KEY, WORKFLOWS

from mailroom.cli.main import cli
from mailroom.container import Container, build_container
from mailroom.domain.messages import ChunkRange, Metadata
from mailroom.services.authentication import MailboxPrincipal
from mailroom.services.sending import SendRequest
from mailroom.settings import Settings, load_settings
from mailroom.storage.tables import admin_users, audit_log, chunks, job_log, jobs, message_events, messages

pytestmark = pytest.mark.postgres


def principal(container: Container, mailbox_id: str) -> MailboxPrincipal:
    return MailboxPrincipal(container.mailboxes.get(mailbox_id))


def send(container: Container, bodies: list[bytes], *, complete: bool = True, **meta: str) -> str:
    total = len(bodies) + (0 if complete else 1)
    request = SendRequest("BOB", "", ChunkRange(1, total), Metadata(workflow_id="WF", **meta))
    plan = container.sending.plan_send(principal(container, "ALICE"), request)
    message_id = container.sending.store_first_chunk(plan, [bodies[0]]).message_id
    for number, body in enumerate(bodies[1:], start=2):
        alice = principal(container, "ALICE")
        chunk = container.sending.plan_chunk(alice, message_id, ChunkRange(number, total), "")
        container.sending.store_chunk(alice, chunk, [body])
    return message_id


@pytest.fixture
def old_installation(tmp_path: Path, clock) -> Path:
    """An embedded installation with every kind of row: messages accepted, chunked, still
    uploading, acknowledged, expired with their reports, and purged; every chunk in a payload
    file but one, kept in its row (as small chunks are by default)."""
    data_dir = tmp_path / "old"
    files_only = load_settings({}, data_dir=data_dir, shared_key=SHARED_KEY, inline_payload_bytes=0)
    old = build_container(files_only, clock=clock)
    try:
        for mailbox in MAILBOXES:
            old.mailboxes.add(mailbox)
        old.mailboxes.import_workflows(WORKFLOWS)
        purged = send(old, [b"acknowledged long ago"])
        old.receiving.acknowledge(principal(old, "BOB"), purged)
        clock.advance(timedelta(days=31))
        assert old.maintenance.sweep().purged == 1
        expired = send(old, [b"never collected"], subject="expires")
        clock.advance(timedelta(days=5, seconds=1))
        assert old.maintenance.sweep().expired == [expired]
        send(old, [b"plain"], local_id="L1")
        send(old, [b"part one;", b"part two;", b"part three"], file_name="big.bin")
        send(old, [b"first of two"], complete=False)
        acked = send(old, [b"read"])
        old.receiving.acknowledge(principal(old, "BOB"), acked)
        old.admin_users.add("root", "correct horse battery")
        old.admin.audit("root", "127.0.0.1", "GetServerInfo", None, {}, "succeeded")
        old.jobs.submit("PurgeExpired", {"orphans": False}, owner="root")
        assert old.job_runner().run_one()  # a finished job, with its log lines
    finally:
        old.close()
    old = build_container(files_only.replace(inline_payload_bytes=1024), clock=clock)
    try:
        send(old, [b"kept in its row"], subject="inline")
    finally:
        old.close()
    return data_dir


def target_env(settings: Settings) -> dict[str, str]:
    return {
        "MAILROOM_DATA_DIR": str(settings.data_dir),
        "MAILROOM_DATABASE_URL": settings.database_url,
        "MAILROOM_PAYLOAD_STORE": "s3",
        "MAILROOM_S3_BUCKET": settings.s3_bucket,
        "MAILROOM_S3_PREFIX": settings.s3_prefix,
        "MAILROOM_S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "MAILROOM_S3_REGION": settings.s3_region,
        "MAILROOM_SHARED_KEY": SHARED_KEY,
    }


def migrate(source: Path, settings: Settings):
    return CliRunner().invoke(
        cli, ["db", "migrate-data", "--from-data-dir", str(source)], env=target_env(settings)
    )


def everything(container: Container) -> dict[str, object]:
    """All rows, and the bytes of every chunk whose payload is kept."""
    with container.db.read() as conn:
        found: dict[str, object] = {
            table.name: sorted(tuple(row) for row in conn.execute(select(table)))
            for table in (messages, message_events, chunks, jobs, job_log, admin_users, audit_log)
        }
        kept = conn.execute(
            select(chunks.c.payload_key)
            .join(messages, messages.c.message_id == chunks.c.message_id)
            .where(messages.c.payload_purged.is_(False), chunks.c.payload_key != "")
        ).scalars()
        found["payloads"] = {key: b"".join(container.payloads.open(key)) for key in kept}
        # chunks kept in their row travel with it (compared with the chunks table above)
    found["mailboxes"] = container.mailboxes.all()
    return found


def test_an_embedded_installation_is_copied_whole_and_verified(
    old_installation, settings, fresh_container, clock
):
    done = migrate(old_installation, settings)
    assert done.exit_code == 0, done.output
    assert "done: every row and payload is in the target" in done.output

    source = build_container(
        load_settings({}, data_dir=old_installation, shared_key=SHARED_KEY), clock=clock, migrate=False
    )
    target = fresh_container(settings)
    try:
        copied, original = everything(target), everything(source)
        assert copied == original
        assert len(copied["payloads"]) == 7  # the purged message's payload stays gone
        # the copy works as an exchange: BOB's inbox, a download, new events after the copied ones
        bob = principal(target, "BOB")
        assert target.receiving.inbox(bob, limit=10) == source.receiving.inbox(
            principal(source, "BOB"), limit=10
        )
        [first, *_] = target.receiving.inbox(bob, limit=10).message_ids
        target.receiving.acknowledge(bob, first)
    finally:
        source.close()
        target.close()


def test_running_again_copies_nothing_and_verifies_everything(old_installation, settings):
    assert migrate(old_installation, settings).exit_code == 0
    again = migrate(old_installation, settings)
    assert again.exit_code == 0, again.output
    for table in ("mailboxes", "workflows", "messages", "message_events", "chunks"):
        assert f"{table}: 0 rows copied" in again.output
    assert "payloads: 0 copied (0 bytes), 7 already there" in again.output


def test_an_interrupted_copy_is_finished_by_the_next_run(old_installation, settings, fresh_container):
    assert migrate(old_installation, settings).exit_code == 0
    target = fresh_container(settings)
    try:
        complete = everything(target)
        # as if the first run had stopped part-way: some rows and one payload never arrived
        with target.db.write() as conn:
            key = conn.execute(
                select(chunks.c.payload_key)
                .join(messages, messages.c.message_id == chunks.c.message_id)
                .where(messages.c.payload_purged.is_(False), chunks.c.payload_key != "")
                .limit(1)
            ).scalar_one()
            message_id = key.split("/")[0]
            conn.execute(delete(chunks).where(chunks.c.message_id == message_id))
            conn.execute(delete(message_events).where(message_events.c.message_id == message_id))
            conn.execute(delete(messages).where(messages.c.message_id == message_id))
        target.payloads.delete(key)

        resumed = migrate(old_installation, settings)
        assert resumed.exit_code == 0, resumed.output
        assert "messages: 1 rows copied" in resumed.output
        assert "payloads: 1 copied" in resumed.output
        assert everything(target) == complete
    finally:
        target.close()


def test_a_payload_that_does_not_match_its_checksum_is_reported_not_copied(old_installation, settings):
    [victim] = [
        p
        for p in (old_installation / "payloads" / "objects").rglob("*")
        if p.is_file() and p.read_bytes() == b"plain"
    ]
    victim.write_bytes(b"PLAIN")
    done = migrate(old_installation, settings)
    assert done.exit_code == 1
    assert "checksum differs from its record (not copied)" in done.output
    assert "1 payloads could not be copied" in done.output


def test_a_target_already_in_use_is_refused(old_installation, settings, container):
    in_use = send(container, [b"a message of the new exchange"])
    done = migrate(old_installation, settings)
    assert done.exit_code == 1
    assert "holds messages the source does not" in done.output
    with container.db.read() as conn:
        assert conn.execute(select(messages.c.message_id)).scalars().all() == [in_use]
