"""``mailroom client ...`` against a real server, with connection settings from the environment."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mailroom.cli.main import cli

from .conftest import PASSWORD, SHARED_KEY, Target


@pytest.fixture
def run(server: Target, tmp_path):  # type: ignore[no-untyped-def]
    def invoke(mailbox: str, *args: str, ok: bool = True, status: int | None = None):  # type: ignore[no-untyped-def]
        env = {
            "MESH_URL": server.url, "MESH_MAILBOX": mailbox, "MESH_PASSWORD": PASSWORD,
            "MESH_SHARED_KEY": SHARED_KEY, "MESH_CA": str(server.pki.ca_cert),
            "MESH_JOURNAL_DIR": str(tmp_path / "journal"), "MESH_CONFIG": str(tmp_path / "none.toml"),
        }  # fmt: skip
        result = CliRunner().invoke(cli, ["client", *args], env=env, catch_exceptions=False)
        if status is not None:
            assert result.exit_code == status, result.output
        else:
            assert (result.exit_code == 0) is ok, result.output
        return result

    return invoke


def test_handshake(run) -> None:  # type: ignore[no-untyped-def]
    assert "ALICE: authenticated" in run("ALICE", "handshake").output
    assert json.loads(run("ALICE", "handshake", "--json").stdout)["authenticated"] is True


def test_send_inbox_download_ack_track(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files = []
    for n in range(2):
        path = tmp_path / f"file{n}.txt"
        path.write_bytes(b"x" * 2500 + bytes([n]))
        files.append(path)
    sent = json.loads(
        run(
            "ALICE",
            "send",
            *map(str, files),
            "--to",
            "BOB",
            "--workflow",
            "WF",
            "--chunk-size",
            "1000",
            "--json",
        ).stdout
    )
    assert [item["total_chunks"] for item in sent] == [3, 3]
    ids = [item["message_id"] for item in sent]
    assert sorted(json.loads(run("BOB", "inbox", "--ids", "--json").stdout)) == sorted(ids)
    assert run("BOB", "inbox", "--ids").stdout.split() == json.loads(
        run("BOB", "inbox", "--ids", "--json").stdout
    )
    details = json.loads(run("BOB", "inbox", "--json").stdout)
    assert sorted(item["message_id"] for item in details) == sorted(ids)
    for item in details:
        assert item["sender"] == "ALICE"
        assert item["file_name"] in ("file0.txt", "file1.txt")
        assert item["total_chunks"] == 3
        assert item["received_at"][:2] == "20"
    out = tmp_path / "in"
    result = run("BOB", "download", ids[0], "--folder", str(out))
    assert ids[0] in result.stdout
    assert (out / f"{ids[0]}.dat").read_bytes() == files[0].read_bytes()
    run("BOB", "ack", ids[0])
    assert json.loads(run("BOB", "inbox", "--ids", "--json").stdout) == [ids[1]]
    downloaded = json.loads(run("BOB", "download", "--all", "--ack", "--folder", str(out), "--json").stdout)
    assert [item["message_id"] for item in downloaded] == [ids[1]]
    assert json.loads(run("BOB", "inbox", "--json").stdout) == []
    assert run("BOB", "inbox").stderr == "0 message(s) waiting\n"
    tracked = json.loads(run("ALICE", "track", ids[0], "--json").stdout)
    assert tracked["status"] == "acknowledged"
    assert "acknowledged" in run("ALICE", "track", sent[1]["local_id"], "--local-id").stdout


def test_reports_are_shown_prominently(run, server: Target, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "f.txt"
    path.write_text("hello")
    original = json.loads(run("ALICE", "send", str(path), "--to", "BOB", "--workflow", "WF", "--json").stdout)
    server.inject_report("ALICE", original[0]["message_id"])
    result = run("ALICE", "download", "--all", "--ack", "--folder", str(tmp_path / "in"))
    assert "NON-DELIVERY REPORT" in result.stderr
    assert original[0]["message_id"] in result.stderr
    assert "1 non-delivery report" in result.stderr


def test_lookup_and_errors(run) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(run("ALICE", "lookup", "X26", "RESTRICTED_WORKFLOW", "--json").stdout) == [
        {"mailbox_id": "BOB", "mailbox_name": "TESTMB2"}
    ]
    result = run("NOBODY", "inbox", ok=False)
    assert "AuthenticationError" in result.output


def test_lookup_that_matches_nothing_says_so_and_exits_3(run) -> None:  # type: ignore[no-untyped-def]
    result = run("ALICE", "lookup", "X26", "NO_SUCH_WORKFLOW", status=3)
    assert result.stdout == ""
    assert "nothing matched: no mailbox of organisation X26 receives workflow NO_SUCH_WORKFLOW" in " ".join(
        result.stderr.split()
    )
    assert "no workflows registered" in " ".join(result.stderr.split())
    assert json.loads(run("ALICE", "lookup", "X26", "NO_SUCH_WORKFLOW", "--json", status=3).stdout) == []
    assert run("ALICE", "lookup", "X26", "RESTRICTED_WORKFLOW").stdout == "BOB  TESTMB2\n"


def test_inbox_shows_reports_for_what_they_are(run, server: Target, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server.inject_report("ALICE", "20240501123000123456_ABCDEF")
    [item] = json.loads(run("ALICE", "inbox", "--json").stdout)
    assert item["message_type"] == "REPORT"
    assert item["linked_message_id"] == "20240501123000123456_ABCDEF"
    table = run("ALICE", "inbox").stdout  # 80 columns: the subject column wraps
    assert "NON-DELIVERY" in table
    assert "REPORT for" in table
