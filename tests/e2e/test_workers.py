"""``mailroom serve --workers 2``: two processes on one port and one SQLite database.

Both take turns at SQLite's writer through the lock file beside the database
(storage.write_lock); every accepted message arrives once, and a token spent at one process
is refused at the other.
"""

from __future__ import annotations

import os
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
from tests.e2e.conftest import StartServer
from tests.e2e.harness import PASSWORD, SHARED_KEY, download, inbox, send, wait_for

from mailroom.auth.mesh_hmac import build_header

SENDERS, EACH = 4, 25


def workers_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def test_two_workers_share_the_port_and_lose_nothing(start_server: StartServer) -> None:
    server = start_server(env={"MAILROOM_WORKERS": "2"})
    wait_for(lambda: len(workers_of(server.pid)) >= 2, what="two worker processes")
    assert (server.data_dir / "mailroom.db.lock").exists()

    def sender(n: int) -> list[str]:
        client = server.client("ALICE")  # one connection each: uvicorn's workers share the socket
        return [send(client, f"message {n}-{i}".encode()) for i in range(EACH)]

    with ThreadPoolExecutor(SENDERS) as pool:
        sent = [message_id for batch in pool.map(sender, range(SENDERS)) for message_id in batch]
    assert len(set(sent)) == SENDERS * EACH

    bob = server.client("BOB")
    waiting = inbox(bob)
    assert sorted(waiting) == sorted(sent)

    def receive(message_id: str) -> tuple[int, int]:
        client = server.client("BOB")
        status, _digest, _size = download(client, message_id)
        acked = client.put(f"/messageexchange/BOB/inbox/{message_id}/status/acknowledged")
        return status, acked.status_code

    with ThreadPoolExecutor(SENDERS) as pool:
        assert set(pool.map(receive, sent)) == {(200, 200)}
    assert inbox(bob) == []


def test_a_token_spent_at_one_worker_is_refused_at_the_other(start_server: StartServer) -> None:
    server = start_server(env={"MAILROOM_WORKERS": "2"})
    wait_for(lambda: len(workers_of(server.pid)) >= 2, what="two worker processes")
    outcomes = []
    for _ in range(10):
        token = build_header("BOB", PASSWORD, SHARED_KEY, nonce=str(uuid.uuid4()), at=datetime.now(UTC))
        # two fresh connections: the kernel hands them to either worker
        for _attempt in range(2):
            with httpx.Client(base_url=server.process.base_url) as client:
                response = client.get("/messageexchange/BOB/inbox", headers={"authorization": token})
                outcomes.append(response.status_code)
    assert outcomes == [200, 403] * 10


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited


def test_workers_stop_when_their_supervisor_is_killed(start_server: StartServer) -> None:
    """SIGKILL (or the OOM killer) takes the supervisor without a chance to stop its workers;
    they notice and stop themselves rather than serve on as orphans holding the port."""
    server = start_server(env={"MAILROOM_WORKERS": "2"})
    wait_for(lambda: len(workers_of(server.pid)) >= 3, what="two workers and a resource tracker")
    children = workers_of(server.pid)
    os.kill(server.pid, signal.SIGKILL)  # the supervisor alone, not its process group
    wait_for(lambda: not any(alive(pid) for pid in children), timeout=30, what="the workers to stop")


def test_worker_processes_inherit_the_malloc_arena_limit(start_server: StartServer, monkeypatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    server = start_server(env={"MAILROOM_WORKERS": "2"})
    wait_for(lambda: len(workers_of(server.pid)) >= 2, what="two worker processes")
    for worker in workers_of(server.pid):
        environment = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
        assert b"MALLOC_ARENA_MAX=2" in environment
