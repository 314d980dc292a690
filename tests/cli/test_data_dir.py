"""The data directory: made only when something is kept in it, and private whatever the umask.

The real ``mailroom`` command (the console script) in a working folder of the test's own: with
PostgreSQL, S3 and the shared key set, nothing may appear in that folder; with the defaults,
``./mailroom-data`` appears with mode 0700. Every file a server makes while it takes messages is
0600 and every directory 0700, even in a data directory that exists with mode 0755.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from tests.support import postgres
from tests.support.s3 import S3Server
from tests.support.server import ServerProcess

from mailroom.auth.mesh_hmac import build_header
from mailroom.container import where_things_are
from mailroom.settings import load_settings

MAILROOM = str(Path(sys.executable).parent / "mailroom")
KEY = "DataDirTestKey"
BIG = 200 * 1024  # above inline_payload_bytes: kept in the payload store, not the database row


def clean_env(**settings: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("MAILROOM_")}
    return {**env, "MAILROOM_SWEEP_INTERVAL": "0", **settings}


def mailroom(cwd: Path, env: Mapping[str, str], *args: str, umask: int = 0o022) -> str:
    done = subprocess.run(
        [MAILROOM, *args], cwd=cwd, env=env, umask=umask, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"mailroom {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def add_mailboxes(cwd: Path, env: Mapping[str, str], *extra: str, umask: int = 0o022) -> None:
    for box in ("ALICE", "BOB"):
        mailroom(cwd, env, "mailbox", "add", box, "--password", "pw", *extra, umask=umask)


def serve(cwd: Path, env: Mapping[str, str], log: Path, *extra: str, umask: int = 0o022) -> ServerProcess:
    """``mailroom serve`` under ``umask`` (through the shell: the launcher takes no umask)."""
    argv = ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", MAILROOM, "serve", "--port", "{port}"]
    server = ServerProcess([*argv, *extra], log_path=log, env=env, cwd=cwd, scheme="http")
    server.start()
    return server


def exchange(server: ServerProcess, key: str) -> None:
    """ALICE sends BOB a large and a small message; BOB downloads and acknowledges both."""

    def auth(mailbox: str) -> dict[str, str]:
        token = build_header(mailbox, "pw", key, nonce=str(uuid.uuid4()), at=datetime.now(UTC))
        return {"authorization": token, "accept": "application/vnd.mesh.v2+json"}

    mesh = f"{server.base_url}/messageexchange"
    with httpx.Client(timeout=30) as http:
        for body in (os.urandom(BIG), b"small"):
            headers = {**auth("ALICE"), "mex-to": "BOB", "mex-workflowid": "DATA_DIR_TEST"}
            sent = http.post(f"{mesh}/ALICE/outbox", content=body, headers=headers)
            assert sent.status_code == 202, sent.text
            message_id = sent.json()["message_id"]
            got = http.get(f"{mesh}/BOB/inbox/{message_id}", headers=auth("BOB"))
            assert got.content == body
            acked = http.put(f"{mesh}/BOB/inbox/{message_id}/status/acknowledged", headers=auth("BOB"))
            assert acked.status_code == 200, acked.text


def modes(root: Path) -> dict[str, int]:
    """Permission bits of everything under ``root``, by relative path (``root`` itself excluded)."""
    return {str(path.relative_to(root)): stat.S_IMODE(path.lstat().st_mode) for path in root.rglob("*")}


@pytest.fixture
def postgres_url() -> Iterator[str]:
    postgres.require_postgres()
    with postgres.scratch_database("data_dir") as url:
        yield url


def test_postgres_s3_and_a_set_key_leave_the_working_folder_empty(
    tmp_path: Path, postgres_url: str, s3_server: S3Server
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    bucket = s3_server.new_bucket()
    env = clean_env(
        MAILROOM_DATABASE_URL=postgres_url,
        MAILROOM_PAYLOAD_STORE="s3",
        MAILROOM_S3_BUCKET=bucket,
        MAILROOM_S3_ENDPOINT_URL=s3_server.endpoint_url,
        MAILROOM_S3_REGION=s3_server.region,
        MAILROOM_SHARED_KEY=KEY,
        **s3_server.env(),
    )
    workflows = tmp_path / "workflows.jsonl"
    workflows.write_text('{"workflow_id": "DATA_DIR_TEST", "senders": ["ALICE"], "receivers": ["BOB"]}\n')
    assert "database at revision" in mailroom(cwd, env, "db", "upgrade")
    add_mailboxes(cwd, env)
    mailroom(cwd, env, "mailbox", "list")
    mailroom(cwd, env, "workflow", "import", str(workflows))
    server = serve(cwd, env, tmp_path / "server.log")
    try:
        exchange(server, KEY)
    finally:
        server.stop()
    assert list(cwd.iterdir()) == []
    assert s3_server.keys(bucket), "the large payload went to the bucket"
    banner = server.log_path.read_text()
    assert f"database: {postgres_url}" in banner
    assert f"payloads: S3 bucket {bucket} at {s3_server.endpoint_url}" in banner
    assert "from MAILROOM_SHARED_KEY" in banner
    assert "data directory" not in banner


def test_the_defaults_make_a_private_mailroom_data(tmp_path: Path) -> None:
    add_mailboxes(tmp_path, clean_env())
    data_dir = tmp_path / "mailroom-data"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert {"mailroom.db", "mailroom.db.lock", "shared.key", "payloads"} <= set(modes(data_dir))


def test_only_what_is_kept_there_makes_the_data_dir(tmp_path: Path, s3_server: S3Server) -> None:
    """S3 payloads and a set key, SQLite elsewhere: the data directory is never needed."""
    bucket = s3_server.new_bucket()
    env = clean_env(
        MAILROOM_DATABASE_URL=f"sqlite:///{tmp_path / 'db' / 'meta.db'}",
        MAILROOM_PAYLOAD_STORE="s3",
        MAILROOM_S3_BUCKET=bucket,
        MAILROOM_S3_ENDPOINT_URL=s3_server.endpoint_url,
        MAILROOM_S3_REGION=s3_server.region,
        MAILROOM_SHARED_KEY=KEY,
        **s3_server.env(),
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    add_mailboxes(cwd, env)
    assert list(cwd.iterdir()) == []
    assert stat.S_IMODE((tmp_path / "db").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "db" / "meta.db").stat().st_mode) == 0o600


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask022", "umask000"])
def test_every_file_made_in_an_existing_0755_dir_is_private(tmp_path: Path, umask: int) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    env = clean_env(MAILROOM_DATA_DIR=str(data_dir))
    add_mailboxes(tmp_path, env, umask=umask)
    server = serve(tmp_path, env, tmp_path / "server.log", umask=umask)
    try:
        exchange(server, (data_dir / "shared.key").read_text().strip())
        found = modes(data_dir)  # while it runs: SQLite removes -wal and -shm when it closes
    finally:
        server.stop()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755, "an existing directory keeps its mode"
    expected = {"mailroom.db", "mailroom.db-wal", "mailroom.db-shm", "mailroom.db.lock", "shared.key"}
    assert expected <= set(found)
    payload_files = [name for name in found if name.startswith("payloads/objects/") and name.count("/") == 4]
    assert payload_files, f"the large message is a payload file: {sorted(found)}"
    for name, mode in found.items():
        wanted = 0o700 if (data_dir / name).is_dir() else 0o600
        assert mode == wanted, f"{name} has mode {mode:o}, not {wanted:o}"


def test_the_banner_says_where_things_are(tmp_path: Path) -> None:
    embedded = where_things_are(load_settings({}, data_dir=tmp_path / "d"))
    data_dir = (tmp_path / "d").resolve()
    assert embedded == [
        f"database: sqlite:///{data_dir / 'mailroom.db'}",
        f"payloads: files under {data_dir / 'payloads'}",
        f"shared key (the NHSMESH HMAC key clients need) from {data_dir / 'shared.key'}",
        f"data directory: {data_dir} (database, payloads, shared key)",
    ]
    scaled = where_things_are(
        load_settings(
            {},
            data_dir=tmp_path / "d",
            database_url="postgresql://mailroom:s3cret@db.internal:5432/mailroom",
            payload_store="s3",
            s3_bucket="payloads",
            s3_prefix="mr/",
            shared_key="k",
        )
    )
    assert scaled == [
        "database: postgresql://mailroom:***@db.internal:5432/mailroom",
        "payloads: S3 bucket payloads, prefix mr/",
        "shared key (the NHSMESH HMAC key clients need) from MAILROOM_SHARED_KEY",
    ]
