"""Two real ``mailroom serve`` processes on different ports, one PostgreSQL database and one
S3 bucket (moto's server): whatever a client does through one, the other serves.

Set up the way an operator would: ``mailroom db upgrade`` once, mailboxes imported with the
CLI, then every server started with the same settings. Clients sign each request with a fresh
``NHSMESH`` token, except where a test replays one on purpose.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from tests.e2e.harness import PASSWORD, SHARED_KEY, V2, MeshAuth, server_env
from tests.support import postgres
from tests.support.s3 import S3Server
from tests.support.server import ServerProcess

from mailroom.auth.mesh_hmac import build_header
from mailroom.storage.db import create_database
from mailroom.storage.tables import messages

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

MAILBOXES = ("ALICE", "BOB")


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mailroom", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class Cluster:
    """Servers sharing one database and bucket; ``start(name, **settings)`` adds one."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.servers: dict[str, ServerProcess] = {}
        self.clients: list[httpx.Client] = []

    def start(self, name: str, **settings: str) -> ServerProcess:
        extra = {f"MAILROOM_{key.upper()}": value for key, value in settings.items()}
        server = ServerProcess(
            [sys.executable, "-m", "mailroom", "serve", "--port", "{port}"],
            log_path=self.root / f"{name}.log",
            env={**self.env, "MAILROOM_DATA_DIR": str(self.root / name), **extra},
            scheme="http",
            startup_timeout=60,
        )
        server.start()
        self.servers[name] = server
        return server

    def client(self, name: str, mailbox: str) -> httpx.Client:
        made = httpx.Client(base_url=self.servers[name].base_url, auth=MeshAuth(mailbox), timeout=60)
        self.clients.append(made)
        return made

    def stop(self) -> None:
        for made in self.clients:
            made.close()
        for server in self.servers.values():
            server.stop()
        self.servers.clear()


@pytest.fixture
def cluster(tmp_path: Path, s3_server: S3Server) -> Iterator[Cluster]:
    postgres.require_postgres()
    with postgres.scratch_database("cluster") as url:
        env = {
            **server_env(s3_server.env()),
            "MAILROOM_DATABASE_URL": url,
            "MAILROOM_PAYLOAD_STORE": "s3",
            "MAILROOM_S3_BUCKET": s3_server.new_bucket(),
            "MAILROOM_S3_PREFIX": "exchange",
            "MAILROOM_S3_ENDPOINT_URL": s3_server.endpoint_url,
            "MAILROOM_S3_REGION": s3_server.region,
            "MAILROOM_DB_POOL_SIZE": "2",
            "MAILROOM_LOG_LEVEL": "warning",
        }
        cli({**env, "MAILROOM_DATA_DIR": str(tmp_path / "admin")}, "db", "upgrade")
        boxes = tmp_path / "mailboxes.jsonl"
        boxes.write_text("".join(f'{{"mailbox_id": "{m}", "password": "{PASSWORD}"}}\n' for m in MAILBOXES))
        cli({**env, "MAILROOM_DATA_DIR": str(tmp_path / "admin")}, "mailbox", "import", str(boxes))
        running = Cluster(tmp_path, env)
        running.database_url = url  # type: ignore[attr-defined]
        try:
            yield running
        finally:
            running.stop()


def send(client: httpx.Client, body: bytes, **headers: str) -> str:
    response = client.post(
        "/messageexchange/ALICE/outbox",
        content=body,
        headers={"mex-to": "BOB", "mex-workflowid": "WF", "accept": V2, **headers},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["message_id"])


def test_one_exchange_served_by_two_processes(cluster: Cluster):
    cluster.start("a")
    cluster.start("b")
    alice_a, alice_b = cluster.client("a", "ALICE"), cluster.client("b", "ALICE")
    bob_a, bob_b = cluster.client("a", "BOB"), cluster.client("b", "BOB")

    # sent through A; listed, downloaded and acknowledged through B
    single = send(alice_a, b"through A")
    assert bob_b.get("/messageexchange/BOB/inbox", headers={"accept": V2}).json()["messages"] == [single]
    assert bob_b.get(f"/messageexchange/BOB/inbox/{single}").content == b"through A"

    # a chunked upload with its chunks split across A and B, then every chunk read through B
    chunks = [bytes([n]) * (100_000 + n) for n in range(1, 6)]
    chunked = send(alice_a, chunks[0], **{"mex-chunk-range": f"1:{len(chunks)}"})
    for number, body in enumerate(chunks[1:], start=2):
        client = alice_b if number % 2 == 0 else alice_a
        sent = client.post(
            f"/messageexchange/ALICE/outbox/{chunked}/{number}",
            content=body,
            headers={"mex-chunk-range": f"{number}:{len(chunks)}", "accept": V2},
        )
        assert sent.status_code == 202, sent.text
    for number, body in enumerate(chunks, start=1):
        reader = bob_b if number % 2 else bob_a
        got = reader.get(f"/messageexchange/BOB/inbox/{chunked}/{number}")
        assert got.status_code == (206 if number < len(chunks) else 200)
        assert got.content == body

    for message_id in (single, chunked):
        acked = bob_b.put(f"/messageexchange/BOB/inbox/{message_id}/status/acknowledged")
        assert acked.status_code == 200
    assert bob_a.get("/messageexchange/BOB/inbox", headers={"accept": V2}).json()["messages"] == []
    tracked = alice_a.get("/messageexchange/ALICE/outbox/tracking", params={"messageID": chunked})
    assert tracked.json()["status"] == "Acknowledged"


def test_chunks_uploaded_to_both_processes_at_once(cluster: Cluster):
    cluster.start("a")
    cluster.start("b")
    senders = [cluster.client("a", "ALICE"), cluster.client("b", "ALICE")]
    chunks = [f"chunk {n};".encode() * 1000 for n in range(1, 11)]
    message_id = send(senders[0], chunks[0], **{"mex-chunk-range": f"1:{len(chunks)}"})
    failures: list[str] = []

    def upload(number: int) -> None:
        sent = senders[number % 2].post(
            f"/messageexchange/ALICE/outbox/{message_id}/{number}",
            content=chunks[number - 1],
            headers={"mex-chunk-range": f"{number}:{len(chunks)}"},
        )
        if sent.status_code != 202:
            failures.append(sent.text)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(2, len(chunks) + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    bob = cluster.client("b", "BOB")
    assert bob.get("/messageexchange/BOB/inbox", headers={"accept": V2}).json()["messages"] == [message_id]
    received = b"".join(
        bob.get(f"/messageexchange/BOB/inbox/{message_id}/{n}").content for n in range(1, len(chunks) + 1)
    )
    assert received == b"".join(chunks)


def test_paging_tokens_and_replay_guard_span_processes(cluster: Cluster):
    cluster.start("a")
    cluster.start("b")
    sender = cluster.client("a", "ALICE")
    sent = [send(sender, f"message {n}".encode()) for n in range(25)]
    readers = [cluster.client("a", "BOB"), cluster.client("b", "BOB")]

    listed: list[str] = []
    url = "/messageexchange/BOB/inbox?max_results=10"
    for page in range(10):  # a v2 links.next token issued by one process, followed on the other
        body = readers[page % 2].get(url, headers={"accept": V2}).json()
        listed += body["messages"]
        url = body.get("links", {}).get("next")
        if not url:
            break
    assert sorted(listed) == sorted(sent)
    assert len(listed) == len(set(listed)) == 25

    # v1 paging by the last message id, likewise
    first = readers[1].get("/messageexchange/BOB/inbox", params={"max_results": 10}).json()["messages"]
    rest = (
        readers[0]
        .get("/messageexchange/BOB/inbox", params={"max_results": 10, "continue_from": first[-1]})
        .json()["messages"]
    )
    assert first + rest == listed[:20]

    # one token, used on A then on B: the second use is refused
    token = build_header("BOB", PASSWORD, SHARED_KEY, nonce=str(uuid.uuid4()), at=datetime.now(UTC))
    plain = [httpx.Client(base_url=server.base_url, timeout=30) for server in cluster.servers.values()]
    try:
        assert plain[0].get("/messageexchange/BOB/inbox", headers={"authorization": token}).status_code == 200
        assert plain[1].get("/messageexchange/BOB/inbox", headers={"authorization": token}).status_code == 403
        assert plain[0].get("/messageexchange/BOB/inbox", headers={"authorization": token}).status_code == 403
    finally:
        for client in plain:
            client.close()


def test_both_processes_sweep_and_each_message_expires_once(cluster: Cluster):
    # a short inbox retention, and both processes sweeping twice a second
    fast = {"inbox_retention": "3s", "sweep_interval": "0.3s"}
    cluster.start("a", **fast)
    cluster.start("b", **fast)
    senders = [cluster.client("a", "ALICE"), cluster.client("b", "ALICE")]
    sent = sorted(send(senders[n % 2], b"never collected") for n in range(30))
    # a third process starting and stopping mid-way must not disturb anything either
    cluster.start("c", **fast)
    cluster.servers.pop("c").kill()

    db = create_database(cluster.database_url)  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 60
        reports: list[str] = []
        while time.monotonic() < deadline:
            with db.read() as conn:
                reports = sorted(
                    conn.execute(
                        select(messages.c.linked_message_id).where(messages.c.message_type == "REPORT")
                    ).scalars()
                )
            if len(reports) >= len(sent):
                break
            time.sleep(0.2)
        time.sleep(1.5)  # a few more sweeps by both: still one report per message
        with db.read() as conn:
            reports = sorted(
                conn.execute(
                    select(messages.c.linked_message_id).where(messages.c.message_type == "REPORT")
                ).scalars()
            )
            undeliverable = conn.execute(
                select(func.count()).select_from(messages).where(messages.c.status == "undeliverable")
            ).scalar_one()
    finally:
        db.dispose()
    assert reports == sent
    assert undeliverable == len(sent)
    inbox = cluster.client("b", "ALICE").get("/messageexchange/ALICE/inbox", headers={"accept": V2})
    assert len(inbox.json()["messages"]) == len(sent)


def test_a_process_killed_mid_upload_leaves_the_exchange_to_the_other(cluster: Cluster):
    """SIGKILL of one process while a chunk streams into it: nothing partial becomes visible, and
    the client finishes the upload through the other process."""
    cluster.start("a")
    cluster.start("b")
    alice_a, alice_b = cluster.client("a", "ALICE"), cluster.client("b", "ALICE")
    message_id = send(alice_b, b"chunk one;", **{"mex-chunk-range": "1:2"})
    streaming, killed = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield b"x" * 65536
        streaming.set()
        killed.wait(timeout=30)  # the server dies before the rest comes
        yield b"too late"

    outcome: list[object] = []

    def upload() -> None:
        try:
            outcome.append(
                alice_a.post(
                    f"/messageexchange/ALICE/outbox/{message_id}/2",
                    content=slow_body(),
                    headers={"mex-chunk-range": "2:2"},
                )
            )
        except httpx.HTTPError as exc:
            outcome.append(exc)

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    assert streaming.wait(timeout=30)
    time.sleep(0.3)
    cluster.servers.pop("a").kill()
    killed.set()
    uploader.join(timeout=60)
    [failed] = outcome  # the connection died with the server: no 202
    assert isinstance(failed, httpx.HTTPError), failed

    bob_b = cluster.client("b", "BOB")
    assert bob_b.get("/messageexchange/BOB/inbox", headers={"accept": V2}).json()["messages"] == []
    resent = alice_b.post(
        f"/messageexchange/ALICE/outbox/{message_id}/2",
        content=b"chunk two",
        headers={"mex-chunk-range": "2:2"},
    )
    assert resent.status_code == 202, resent.text
    assert bob_b.get("/messageexchange/BOB/inbox", headers={"accept": V2}).json()["messages"] == [message_id]
    assert bob_b.get(f"/messageexchange/BOB/inbox/{message_id}/1").content == b"chunk one;"
    assert bob_b.get(f"/messageexchange/BOB/inbox/{message_id}/2").content == b"chunk two"


ADMIN = ("root", "correct horse battery")


def follow(client: httpx.Client, token: str) -> dict[str, object]:
    """Poll a job through ``client`` until it ends; its last status."""
    version, deadline = 0, time.monotonic() + 60
    while time.monotonic() < deadline:
        data = {"token": token, "lastKnownStatusVersion": str(version), "millisecondsTimeout": "2000"}
        body = client.post("/api/get-status", data=data).json()
        if body["statusCode"] != "running":
            return dict(body)
        version = int(body["statusVersion"])
    raise AssertionError(f"job {token} still running after a minute")


def test_an_admin_job_started_through_one_process_runs_in_another_and_is_polled_anywhere(
    cluster: Cluster, tmp_path: Path
):
    """On PostgreSQL and S3: A runs no jobs (MAILROOM_JOB_THREADS=0), so B claims the job that
    was started through A; it is followed through A, and a job whose runner B is killed is
    resumed by C once B's lease has run out."""
    cli(
        {**cluster.env, "MAILROOM_DATA_DIR": str(tmp_path / "admin")},
        "admin",
        "user",
        "add",
        *ADMIN[:1],
        "--password",
        ADMIN[1],
    )
    admin_on = {"admin_api": "true", "job_lease": "3s", "job_poll_interval": "0.2s"}
    cluster.start("a", **admin_on, job_threads="0")
    b = cluster.start("b", **admin_on)
    alice = cluster.client("a", "ALICE")
    for n in range(6):
        send(alice, bytes([n]) * (200 * 1024))  # payload objects in the bucket, not rows
    through_a = httpx.Client(base_url=cluster.servers["a"].base_url, auth=ADMIN, timeout=60)
    cluster.clients.append(through_a)

    started = through_a.post("/api/invoke/VerifyStore").json()
    assert started["statusCode"] == "running", started
    done = follow(through_a, str(started["token"]))
    assert done["statusCode"] == "succeeded", done
    assert done["result"]["chunksVerified"] == 6  # type: ignore[index]
    [job] = through_a.post("/api/invoke/GetJobs", data={"function": "VerifyStore"}).json()["result"]
    assert job["attempts"] == 1  # claimed once, by B (A runs none)
    assert job["token"] == started["token"]

    # B killed just after a second job is queued (before or after it claimed it): C finishes it,
    # taking it from the queue or, once B's lease has run out, resuming it
    again = through_a.post("/api/invoke/VerifyStore").json()
    time.sleep(0.3)
    b.kill()
    cluster.servers.pop("b")
    cluster.start("c", **admin_on)
    done = follow(through_a, str(again["token"]))
    assert done["statusCode"] == "succeeded", done
    assert done["result"]["chunksVerified"] == 6  # type: ignore[index]
