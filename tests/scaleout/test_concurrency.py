"""Several processes on one PostgreSQL database: no lost updates, no double work.

Each "process" here is a container of its own (own engine and connection pool, own S3
client), so they share only what real processes share: the database and the bucket. Threads
start their work together behind a barrier to make the races happen.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.conftest import PASSWORD, SHARED_KEY
from tests.e2e.harness import server_env
from tests.support import postgres

from mailroom.auth.mesh_hmac import build_header
from mailroom.domain.messages import ChunkRange, MessageStatus, MessageType, Metadata
from mailroom.errors import AuthenticationFailed
from mailroom.services import maintenance
from mailroom.services.authentication import MailboxPrincipal
from mailroom.services.sending import SendRequest
from mailroom.storage.db import create_database
from mailroom.storage.migrate import current_revision, head_revision
from mailroom.storage.tables import message_events, messages

pytestmark = pytest.mark.postgres


def together(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run every job in its own thread, released at the same moment; results (or exceptions)."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], Any]) -> Any:
        barrier.wait(timeout=30)
        try:
            return job()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


def principal(container, mailbox_id):
    return MailboxPrincipal(container.mailboxes.get(mailbox_id))


def start_chunked(container, total: int, body: bytes = b"chunk 1;"):
    request = SendRequest("BOB", "", ChunkRange(1, total), Metadata(workflow_id="WF"))
    plan = container.sending.plan_send(principal(container, "ALICE"), request)
    return container.sending.store_first_chunk(plan, [body])


def events(container, message_id: str) -> list[str]:
    with container.db.read() as conn:
        stmt = select(message_events.c.status).where(message_events.c.message_id == message_id)
        return sorted(conn.execute(stmt).scalars())


def test_chunks_sent_to_different_processes_at_once_complete_the_message_once(container, other_processes):
    processes = [container, *other_processes(2)]
    total = 9
    for _round in range(3):
        message = start_chunked(container, total)

        def upload(number: int, message=message):
            process = processes[number % len(processes)]
            sender = principal(process, "ALICE")
            plan = process.sending.plan_chunk(sender, message.message_id, ChunkRange(number, total), "")
            return process.sending.store_chunk(sender, plan, [f"chunk {number};".encode()])

        results = together([lambda n=n: upload(n) for n in range(2, total + 1)])
        assert not [r for r in results if isinstance(r, Exception)]
        # exactly one of the concurrent commits saw the last missing chunk and completed it
        assert sum(r.status is MessageStatus.ACCEPTED for r in results) >= 1
        assert events(container, message.message_id) == ["accepted", "uploading"]
        found = container.receiving.download(principal(container, "BOB"), message.message_id, 1)
        assert found.message.status is MessageStatus.ACCEPTED
        expected = b"".join(f"chunk {n};".encode() for n in range(1, total + 1))
        assert found.message.file_size == len(expected)
        received = b""
        for number in range(1, total + 1):
            chunk = processes[number % 3].receiving.download(
                principal(processes[number % 3], "BOB"), message.message_id, number
            )
            received += b"".join(processes[0].receiving.open_chunk(chunk))
        assert received == expected


def test_the_same_chunk_sent_to_two_processes_at_once_is_recorded_once(container, other_processes):
    [other] = other_processes(1)
    message = start_chunked(container, 2)

    def upload(process, body: bytes):
        sender = principal(process, "ALICE")
        plan = process.sending.plan_chunk(sender, message.message_id, ChunkRange(2, 2), "")
        return process.sending.store_chunk(sender, plan, [body])

    results = together([lambda: upload(container, b"from A"), lambda: upload(other, b"from B")])
    # the first commit completes the message; the second finds it no longer uploading (423)
    assert sorted(type(r).__name__ for r in results) == ["Locked", "Message"]
    found = container.receiving.download(principal(container, "BOB"), message.message_id, 2)
    assert b"".join(container.receiving.open_chunk(found)) in (b"from A", b"from B")
    assert events(container, message.message_id) == ["accepted", "uploading"]


def test_a_token_is_accepted_once_however_many_processes_see_it_at_once(container, other_processes, clock):
    processes = [container, *other_processes(3)]
    for _round in range(5):
        header = build_header("ALICE", PASSWORD, SHARED_KEY, nonce=str(uuid.uuid4()), at=clock.now())
        jobs = [lambda p=p, h=header: p.auth.authenticate(h, "ALICE") for p in processes for _ in range(3)]
        results = together(jobs)
        assert sum(isinstance(r, MailboxPrincipal) for r in results) == 1
        assert all(
            isinstance(r, AuthenticationFailed) for r in results if not isinstance(r, MailboxPrincipal)
        )


def send(container, body: bytes = b"x") -> str:
    request = SendRequest("BOB", "", ChunkRange(1, 1), Metadata(workflow_id="WF"))
    plan = container.sending.plan_send(principal(container, "ALICE"), request)
    return container.sending.store_first_chunk(plan, [body]).message_id


def report_links(container) -> list[str]:
    with container.db.read() as conn:
        stmt = select(messages.c.linked_message_id).where(messages.c.message_type == MessageType.REPORT.value)
        return sorted(conn.execute(stmt).scalars())


def test_concurrent_sweeps_expire_and_report_each_message_exactly_once(container, other_processes, clock):
    ids = sorted(send(container) for _ in range(130))  # more than two claim batches
    clock.advance(timedelta(days=5))
    processes = [container, *other_processes(3)]

    results = together([p.maintenance.sweep for p in processes for _ in range(2)])

    expired = [mid for result in results for mid in result.expired]
    assert sorted(expired) == ids  # every message once, and by one sweep only
    assert report_links(container) == ids
    with container.db.read() as conn:
        undeliverable = conn.execute(
            select(func.count())
            .select_from(message_events)
            .where(message_events.c.status == MessageStatus.UNDELIVERABLE.value)
        ).scalar_one()
    assert undeliverable == len(ids)
    assert all(not p.maintenance.sweep().expired for p in processes)


def test_acknowledge_racing_expiry_leaves_one_outcome(container, other_processes, clock):
    ids = [send(container) for _ in range(40)]
    clock.advance(timedelta(days=5))
    [other] = other_processes(1)
    bob = principal(other, "BOB")

    def ack_all() -> list[str]:
        for message_id in ids:
            other.receiving.acknowledge(bob, message_id)
        return ids

    sweep, _acked = together([container.maintenance.sweep, ack_all])
    for message_id in ids:
        status = container.tracking.by_message_id(principal(container, "ALICE"), message_id).status
        assert status is (
            MessageStatus.UNDELIVERABLE if message_id in sweep.expired else MessageStatus.ACKNOWLEDGED
        )
    assert report_links(container) == sorted(sweep.expired)


def test_processes_migrating_at_once_leave_one_schema_at_head(tmp_path):
    """``mailroom db upgrade`` in three processes at once on an empty database (as when several
    servers start together): one migrates under the advisory lock, the others find it done."""
    postgres.require_postgres()
    with postgres.scratch_database("migrate") as url:
        env = {**server_env({}), "MAILROOM_DATABASE_URL": url, "MAILROOM_DATA_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "mailroom", "db", "upgrade"]
        runs = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(3)
        ]
        outputs = [run.communicate(timeout=120)[0].decode() for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], outputs
        db = create_database(url)
        try:
            assert current_revision(db) == head_revision()
        finally:
            db.dispose()


STALLED_SWEEPER = """
import sys, time
from datetime import datetime
from pathlib import Path
from mailroom.clock import FixedClock
from mailroom.container import build_container
from mailroom.services import maintenance
from mailroom.settings import load_settings

url, data_dir, now, marker = sys.argv[1:]
real = maintenance.not_collected_report

def stall(*args, **kwargs):
    Path(marker).write_text("claimed")  # a batch is claimed and half expired: stop here
    time.sleep(600)
    return real(*args, **kwargs)

maintenance.not_collected_report = stall
settings = load_settings({}, database_url=url, data_dir=Path(data_dir), shared_key="k")
build_container(settings, clock=FixedClock(datetime.fromisoformat(now)), migrate=False).maintenance.sweep()
"""


def test_a_sweeping_process_killed_mid_batch_leaves_its_batch_to_the_others(
    container, settings, clock, tmp_path
):
    ids = sorted(send(container) for _ in range(80))
    clock.advance(timedelta(days=5))
    marker = tmp_path / "claimed"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            STALLED_SWEEPER,
            settings.database_url,
            str(tmp_path / "child"),
            clock.now().isoformat(),
            str(marker),
        ],
        env=server_env({}),
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "the stalled sweeper exited early"
            assert time.monotonic() < deadline, "the stalled sweeper never claimed a batch"
            time.sleep(0.05)
        # the stalled process holds its batch's row locks: this sweep skips them, without waiting
        started = time.monotonic()
        first = container.maintenance.sweep()
        assert time.monotonic() - started < 20
        assert len(first.expired) == len(ids) - maintenance.EXPIRY_BATCH
        child.kill()  # stopped mid-sweep: its transaction (claims, changes) rolls back
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    expired = list(first.expired)
    deadline = time.monotonic() + 30  # the server notices the dead connection within moments
    while len(expired) < len(ids) and time.monotonic() < deadline:
        expired += container.maintenance.sweep().expired
        time.sleep(0.05)
    assert sorted(expired) == ids
    assert report_links(container) == ids
