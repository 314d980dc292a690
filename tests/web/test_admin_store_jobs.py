"""``VerifyStore`` and ``ExportMailbox`` over HTTP in-process, on both stacks (payload files and
S3 objects): the faults a verification must find (a flipped byte, a removed file or object, a
changed in-row chunk) and only those; resuming from a checkpoint; cancelling; an export's
archive, its path rules and its resumption."""

from __future__ import annotations

import hashlib
import json
import tarfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from tests.web.test_admin_api import ROOT, VIEWER, call, status

from mailroom.domain.admin import Privilege
from mailroom.domain.envelopes import Compose
from mailroom.domain.jobs import Job, JobState
from mailroom.services.api_tokens import ApiPrincipal
from mailroom.services.authentication import MailboxPrincipal
from mailroom.services.jobs import JobCancelled, RunnerStopping
from mailroom.storage.payloads.filesystem import FilesystemPayloadStore
from mailroom.storage.repos import envelopes
from mailroom.storage.tables import chunks, messages
from mailroom.web.app import create_app

BIG = bytes(range(256)) * 1024  # 256 KiB: a payload file or object, not an in-row chunk


@pytest.fixture
def settings(settings):
    return settings.replace(admin_api=True)


@pytest.fixture
def api(settings, container):
    container.admin_users.add(*ROOT)
    container.admin_users.add(*VIEWER, privilege=Privilege.READ)
    with TestClient(create_app(settings, container)) as client:
        yield client


@pytest.fixture
def client(api):
    return api


def run_job(
    api: TestClient, function: str, data: dict[str, str] | None = None, *, user: tuple[str, str] = ROOT
) -> dict[str, Any]:
    """Start a long function and follow it to its end; the last status, with the whole log."""
    started = call(api, function, data or {}, user=user).json()
    assert started["statusCode"] == "running", started
    version, log = 0, []
    while True:
        body = status(api, started["token"], version)
        version = body["statusVersion"]
        log += (body["logOutput"] or "").splitlines()
        if body["statusCode"] != "running":
            return {**body, "log": log}


def payload_key(container, message_id: str, chunk_no: int = 1) -> str:
    with container.db.read() as conn:
        stmt = select(chunks.c.payload_key).where(
            chunks.c.message_id == message_id, chunks.c.chunk_no == chunk_no
        )
        return str(conn.execute(stmt).scalar_one())


def flip_a_byte(container, key: str) -> None:
    store = container.payloads
    if isinstance(store, FilesystemPayloadStore):
        path = store._path(key)
        data = bytearray(path.read_bytes())
        data[1000] ^= 0x01
        path.write_bytes(bytes(data))
        return
    name = store._object_key(key)
    data = bytearray(store.client.get_object(Bucket=store.bucket, Key=name)["Body"].read())
    data[1000] ^= 0x01
    store.client.put_object(Bucket=store.bucket, Key=name, Body=bytes(data))


def remove_payload(container, key: str) -> None:
    store = container.payloads
    if isinstance(store, FilesystemPayloadStore):
        store._path(key).unlink()
    else:
        store.client.delete_object(Bucket=store.bucket, Key=store._object_key(key))


def change_in_row(container, message_id: str) -> None:
    with container.db.write() as conn:
        conn.execute(
            update(chunks).where(chunks.c.message_id == message_id).values(data=b"not what was sent")
        )


@pytest.fixture
def store(send, send_chunked, container, clock) -> dict[str, str]:
    """Messages of every kind, some then damaged: name → message id (in this order of ids)."""
    made = [
        ("fine", lambda: send("ALICE", "BOB", BIG)),
        ("chunked", lambda: send_chunked([BIG, BIG, b"end"], "ALICE", "BOB")),
        ("flipped", lambda: send("ALICE", "BOB", BIG)),
        ("removed", lambda: send("BOB", "ALICE", BIG)),
        ("small", lambda: send("ALICE", "BOB", b"small and fine")),
        ("changed", lambda: send("ALICE", "BOB", b"small, changed in its row")),
        ("purged", lambda: send("ALICE", "BARRY", BIG)),
    ]
    ids = {}
    for name, make in made:
        ids[name] = make()
        clock.advance(timedelta(seconds=1))  # ids begin with the time: they sort in this order
    flip_a_byte(container, payload_key(container, ids["flipped"]))
    remove_payload(container, payload_key(container, ids["removed"]))
    change_in_row(container, ids["changed"])
    # purged (undeliverable, then past the payload retention): skipped, not reported
    with container.db.write() as conn:
        conn.execute(
            update(messages).where(messages.c.message_id == ids["purged"]).values(status="undeliverable")
        )
    clock.advance(container.settings.payload_retention + timedelta(minutes=1))
    assert container.maintenance.sweep(orphans=False).purged == 1
    return ids


def test_verify_store_finds_exactly_the_damaged_payloads(api, store):
    done = run_job(api, "VerifyStore")
    assert done["statusCode"] == "succeeded", done["error"]
    result = done["result"]
    assert result["missing"] == [store["removed"]]
    assert result["corrupt"] == sorted([store["flipped"], store["changed"]])
    assert result["unreadable"] == []
    assert result["ok"] is False
    assert result["faultyChunks"] == 3
    # every chunk but the removed one was read: fine 1, chunked 3, flipped 1, small 1, changed 1
    assert result["chunksVerified"] == 7
    log = "\n".join(done["log"])
    assert f"MISSING: message {store['removed']} chunk 1" in log
    assert f"CORRUPT: message {store['flipped']} chunk 1" in log
    assert f"CORRUPT: message {store['changed']} chunk 1" in log
    assert store["purged"] not in log
    assert store["fine"] not in log


def test_verify_store_on_a_sound_store_is_ok(api, send, send_chunked):
    send("ALICE", "BOB", BIG)
    send_chunked([BIG, b"x"], "BOB", "ALICE")
    result = run_job(api, "VerifyStore")["result"]
    assert result["ok"] is True
    assert result["chunksVerified"] == 3
    assert result["bytesVerified"] == 2 * len(BIG) + 1
    # it changes nothing: a read-only administrator may run it too
    assert run_job(api, "VerifyStore", user=VIEWER)["result"]["ok"] is True


class Context:
    """What a job is given, for running a job function directly: stops on its ``stop_at``-th
    safe point with ``stop`` (a cancel or a shutdown), and keeps what it saves."""

    def __init__(self, checkpoint=None, *, stop_at: int = 0, stop: type[Exception] = RunnerStopping):
        self.job = Job(
            job_id="a" * 32, kind="test", arguments={}, owner="t", state=JobState.RUNNING,
            status_version=1, percent=0, status_text=None, result=None, error=None,
            cancel_requested=False, attempts=1, created_at=None, started_at=None, finished_at=None,
        )  # fmt: skip
        self.arguments: dict[str, Any] = {}
        self.checkpoint = dict(checkpoint or {})
        self.lines: list[str] = []
        self.checks = 0
        self.stop_at, self.stop = stop_at, stop

    def log(self, *lines: str) -> None:
        self.lines += lines

    def progress(self, percent, text=None) -> None:
        pass

    def save(self, checkpoint) -> None:
        self.checkpoint = json.loads(json.dumps(checkpoint))

    def check(self) -> None:
        self.checks += 1
        if self.stop_at and self.checks >= self.stop_at:
            raise self.stop()


def verifier(container):
    return container.admin.registry.get("VerifyStore").job


def test_verify_store_resumes_after_its_checkpoint(container, store):
    run = verifier(container)
    whole = run(Context())
    resumed = run(Context({"after": [store["chunked"], 2], "chunks": 0}))
    # chunked's chunk 3 and the messages after it are read, not those before
    assert resumed["chunksVerified"] == whole["chunksVerified"] - 3  # fine 1, chunked 1 and 2
    assert resumed["corrupt"] == whole["corrupt"]
    assert resumed["missing"] == whole["missing"]


@pytest.mark.parametrize("stop", [JobCancelled, RunnerStopping])
def test_verify_store_stops_at_a_safe_point_and_keeps_its_place(container, store, stop):
    context = Context(stop_at=4, stop=stop)
    with pytest.raises(stop):
        verifier(container)(context)
    assert not any("UNREADABLE" in line for line in context.lines)  # a stop is not a fault
    if stop is RunnerStopping:
        assert context.checkpoint["after"] is not None
        rest = verifier(container)(Context(context.checkpoint))
        whole = verifier(container)(Context())
        assert rest["chunksVerified"] == whole["chunksVerified"]
        assert rest["missing"] == whole["missing"]
        assert rest["corrupt"] == whole["corrupt"]


# -- ExportMailbox -------------------------------------------------------------------------------


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}  # type: ignore[union-attr]


def test_export_mailbox_writes_one_archive_of_its_messages(api, send, send_chunked, settings):
    to_alice = send("BOB", "ALICE", BIG)
    from_alice = send_chunked([BIG, b"end"], "ALICE", "BOB")
    small = send("ALICE", "BOB", b"small")
    send("BOB", "BARRY", b"not alice's")
    done = run_job(api, "ExportMailbox", {"mailboxId": "alice"})
    assert done["statusCode"] == "succeeded", done["error"]
    result = done["result"]
    path = Path(result["path"])
    assert path.parent == (settings.data_dir / "exports").resolve()
    assert path.name.startswith("ALICE-")
    assert result["messages"] == 3
    assert result["bytes"] == path.stat().st_size
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    found = members(path)
    assert found[f"{to_alice}/payload"] == BIG
    assert found[f"{from_alice}/payload"] == BIG + b"end"
    assert found[f"{small}/payload"] == b"small"
    meta = json.loads(found[f"{from_alice}/metadata.json"])
    assert meta["messageId"] == from_alice
    assert [c["sha256"] for c in meta["chunks"]] == [
        hashlib.sha256(BIG).hexdigest(),
        hashlib.sha256(b"end").hexdigest(),
    ]
    manifest = json.loads(found["MANIFEST.json"])
    assert manifest["messages"] == 3
    assert len(found) == 3 * 2 + 1


def test_an_export_of_a_damaged_store_keeps_the_metadata_and_says_so(api, store):
    result = run_job(api, "ExportMailbox", {"mailboxId": "BOB"})["result"]
    found = members(Path(result["path"]))
    assert result["missing"] == [store["removed"]]
    assert f"{store['removed']}/metadata.json" in found
    assert f"{store['removed']}/payload" not in found
    assert sorted(result["corrupt"]) == sorted([store["flipped"], store["changed"]])
    assert f"{store['fine']}/payload" in found


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("../outside.tar", "inside the export directory"),
        ("/etc/passwd.tar", "inside the export directory"),
        ("sub/../../x.tar", "inside the export directory"),
        ("alice.zip", ".tar file"),
        ("link/escape.tar", "inside the export directory"),
    ],
)
def test_an_export_path_must_resolve_inside_the_export_directory(api, settings, tmp_path, path, words):
    root = settings.data_dir / "exports"
    root.mkdir(parents=True, exist_ok=True)
    (root / "link").symlink_to(tmp_path)
    body = call(api, "ExportMailbox", {"mailboxId": "ALICE", "path": path}).json()
    assert body["statusCode"] == "failed"
    assert body["token"] is None  # no job was queued
    assert words in body["error"]["message"]
    assert not list(tmp_path.glob("*.tar"))
    assert call(api, "GetJobs", {"function": "ExportMailbox"}).json()["result"] == []


def test_an_export_goes_where_it_is_named_inside_the_directory(api, send, settings):
    send("ALICE", "BOB", b"hello")
    named = run_job(api, "ExportMailbox", {"mailboxId": "ALICE", "path": "monthly/alice.tar"})["result"]
    assert Path(named["path"]) == (settings.data_dir / "exports" / "monthly" / "alice.tar").resolve()
    exists = call(api, "ExportMailbox", {"mailboxId": "ALICE", "path": "monthly/alice.tar"}).json()
    assert "exists already" in exists["error"]["message"]
    into_dir = run_job(api, "ExportMailbox", {"mailboxId": "ALICE", "path": "monthly"})["result"]
    assert Path(into_dir["path"]).parent.name == "monthly"
    missing = call(api, "ExportMailbox", {"mailboxId": "NOBODY"}).json()
    assert "does not exist" in missing["error"]["message"]


def test_an_export_stopped_midway_resumes_and_holds_each_message_once(container, send, settings, monkeypatch):
    monkeypatch.setattr("mailroom.services.export.REPORT_SECONDS", 0.0)  # a checkpoint per message
    ids = [send("ALICE", "BOB", BIG) for _ in range(4)]
    function = container.admin.registry.get("ExportMailbox")
    target = str(settings.data_dir / "exports" / "resumed.tar")
    first = Context(stop_at=3)  # stops during the second message
    first.arguments = {"mailboxId": "ALICE", "path": target}
    with pytest.raises(RunnerStopping):
        function.job(first)
    assert first.checkpoint["messages"] >= 1
    assert not Path(target).exists()
    second = Context(first.checkpoint)
    second.arguments = first.arguments
    result = function.job(second)
    assert result["messages"] == 4
    found = members(Path(target))
    assert sorted(name for name in found if name.endswith("/payload")) == sorted(f"{i}/payload" for i in ids)
    assert all(found[f"{i}/payload"] == BIG for i in ids)
    assert [p.name for p in Path(target).parent.iterdir()] == ["resumed.tar"]


def test_a_cancelled_export_leaves_no_file(container, send, settings):
    send("ALICE", "BOB", BIG)
    target = settings.data_dir / "exports" / "cancelled.tar"
    context = Context(stop_at=2, stop=JobCancelled)
    context.arguments = {"mailboxId": "ALICE", "path": str(target)}
    with pytest.raises(JobCancelled):
        container.admin.registry.get("ExportMailbox").job(context)
    assert list(target.parent.iterdir()) == []


def json_message(container, *, body: str, files: list[tuple[str, bytes]]) -> str:
    """A JSON API message ALICE → BOB with these attachments → its delivery's id."""
    alice = ApiPrincipal("ALICE", read_only=False, login_id="test")
    staged = [container.messaging.stage_attachment(alice, name, "", [data]) for name, data in files]
    compose = Compose(["BOB"], "subject", body, attachment_ids=[a.attachment_id for a in staged])

    async def submit() -> str:
        return (await container.messaging.submit(alice, compose)).message_ids[0]

    return anyio.run(submit)


def test_verify_store_walks_the_json_apis_attachments_too(api, container):
    json_message(container, body="", files=[("fine.bin", BIG)])
    damaged = json_message(container, body="two", files=[("a.bin", BIG), ("b.bin", b"small")])
    with container.db.read() as conn:
        parts = envelopes.attachments_of(conn, [damaged])[damaged]
    flip_a_byte(container, parts[0].payload_key)
    done = run_job(api, "VerifyStore")
    assert done["statusCode"] == "succeeded", done["error"]
    assert done["result"]["chunksVerified"] == 3
    assert done["result"]["corrupt"] == [parts[0].attachment_id]


def test_export_holds_a_json_api_message_as_mesh_serves_it(api, container):
    single = json_message(container, body="", files=[("only.bin", BIG)])
    mixed = json_message(container, body="hello", files=[("a.bin", b"abc")])
    done = run_job(api, "ExportMailbox", {"mailboxId": "BOB"})
    assert done["statusCode"] == "succeeded", done["error"]
    found = members(Path(done["result"]["path"]))
    assert found[f"{single}/payload"] == BIG
    bob = MailboxPrincipal(container.mailboxes.get("BOB"))
    served = container.receiving.open_chunk(container.receiving.download(bob, mixed, 1))
    assert found[f"{mixed}/payload"] == b"".join(served)
    assert found[f"{mixed}/payload"].startswith(b"--mailroom-")
