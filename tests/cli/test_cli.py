"""The `mailroom` administration commands act on the same store the server uses."""

from __future__ import annotations

import json
import os
import platform

import pytest
from click.testing import CliRunner
from tests.cli.conftest import store

from mailroom.cli.main import MALLOC_ARENAS, cli, limit_malloc_arenas, logs_access

# NHS mesh-client's own test data, byte for byte: double spaces, no final newline.
NHS_MAILBOXES = (
    '{"mailbox_id":  "ALICE", "mailbox_name": "TESTMB1", "billing_entity": "England", "ods_code": "X26", '
    '"org_code": "X26", "password": "password"}\n'
    '{"mailbox_id":  "BOB", "mailbox_name": "TESTMB2", "billing_entity": "Wales", "ods_code": "X26", '
    '"org_code": "X26", "password": "password"}'
)
NHS_WORKFLOWS = '{"workflow_id": "RESTRICTED_WORKFLOW", "senders": ["ALICE"], "receivers": ["BOB"]}'


def test_add_list_disable_enable(run):
    assert (
        "added mailbox X26ABC1"
        in run("mailbox", "add", "x26abc1", "--password", "pw", "--name", "GP", "--ods-code", "X26").output
    )
    assert (
        "replaced mailbox X26ABC1"
        in run("mailbox", "add", "X26ABC1", "--password", "pw2", "--replace").output
    )
    rows = [json.loads(line) for line in run("mailbox", "list", "--json").output.splitlines()]
    assert rows == [
        {
            "mailbox_id": "X26ABC1",
            "mailbox_name": "",
            "ods_code": "",
            "org_code": "",
            "org_name": "",
            "billing_entity": "",
            "active": True,
            "waiting": 0,
            "last_handshake_at": None,
        }
    ]
    assert "pw" not in run("mailbox", "list").output

    run("mailbox", "disable", "x26abc1")
    assert store(run).mailboxes.get("X26ABC1").active is False
    run("mailbox", "enable", "X26ABC1")
    container = store(run)
    assert container.mailboxes.get("X26ABC1").active is True
    assert container.mailboxes.get("X26ABC1").password == "pw2"


def test_disable_unknown_mailbox_is_a_clear_error(run):
    result = run("mailbox", "disable", "NOPE", ok=False)
    assert "NOPE" in result.output
    assert "does not exist" in result.output


def test_bad_mailbox_id_is_refused(run):
    result = run("mailbox", "add", "../etc", "--password", "x", ok=False)
    assert "MAILBOX_ID" in result.output


def test_import_nhs_files(run, tmp_path):
    mailboxes = tmp_path / "mailboxes.jsonl"
    workflows = tmp_path / "workflows.jsonl"
    mailboxes.write_text(NHS_MAILBOXES)
    workflows.write_text(NHS_WORKFLOWS)
    assert "2 added, 0 updated" in run("mailbox", "import", str(mailboxes)).output
    assert "0 added, 2 updated" in run("mailbox", "import", str(mailboxes)).output
    assert "imported 1 workflows" in run("workflow", "import", str(workflows)).output
    container = store(run)
    assert container.mailboxes.get("BOB").billing_entity == "Wales"
    assert [m.mailbox_id for m in container.mailboxes.workflow_receivers("RESTRICTED_WORKFLOW")] == ["BOB"]
    assert [m.mailbox_id for m in container.mailboxes.lookup("X26", "RESTRICTED_WORKFLOW")] == ["BOB"]


def test_import_of_a_broken_file_names_the_line_and_changes_nothing(run, tmp_path):
    broken = tmp_path / "mailboxes.jsonl"
    broken.write_text('{"mailbox_id": "ALICE", "password": "p"}\n{"mailbox_id": "BOB", "password": \n')
    result = run("mailbox", "import", str(broken), ok=False)
    assert "line 2" in result.output
    assert store(run).mailboxes.all() == []


def test_import_without_password_is_refused(run, tmp_path):
    broken = tmp_path / "mailboxes.jsonl"
    broken.write_text('{"mailbox_id": "ALICE"}\n')
    assert "no password" in run("mailbox", "import", str(broken), ok=False).output


def test_db_upgrade(run):
    assert "database at revision" in run("db", "upgrade").output


def test_admin_commands_reach_a_running_servers_store(run, tmp_path):
    """The server's container and the CLI share one SQLite file: changes show at once."""
    server_side = store(run)
    run("mailbox", "add", "LATE", "--password", "pw")
    assert server_side.mailboxes.get("LATE").password == "pw"
    run("mailbox", "disable", "LATE")
    assert server_side.mailboxes.get("LATE").active is False
    server_side.close()


def test_generated_shared_key_is_private_and_stable(run):
    run("mailbox", "list")
    key_file = run.data_dir / "shared.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    first = key_file.read_text()
    run("mailbox", "list")
    assert key_file.read_text() == first
    assert len(first.strip()) >= 32
    assert not [p for p in run.data_dir.iterdir() if p.name.startswith("shared.key.")]


def test_an_empty_shared_key_file_is_refused_not_used(run, monkeypatch):
    """An empty key file (a crash right after it was created) must not make "" the HMAC key."""
    monkeypatch.delenv("MAILROOM_SHARED_KEY", raising=False)
    run.data_dir.mkdir(parents=True)
    (run.data_dir / "shared.key").write_text("\n")
    assert "shared.key is empty" in run("mailbox", "list", ok=False).output


def test_password_is_asked_for_when_not_given(run, tmp_path):
    result = CliRunner().invoke(
        cli, ["mailbox", "add", "ASKED", "--data-dir", str(run.data_dir)], input="s3cret\ns3cret\n"
    )
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert store(run).mailboxes.get("ASKED").password == "s3cret"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_serve_limits_malloc_arenas_unless_told_otherwise(monkeypatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is True  # mallopt accepted it
    assert os.environ["MALLOC_ARENA_MAX"] == str(MALLOC_ARENAS)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
    assert os.environ["MALLOC_ARENA_MAX"] == "4"


def test_serve_logs_each_request_only_where_its_line_is_shown() -> None:
    assert [logs_access(level) for level in ("trace", "DEBUG", "info")] == [True] * 3
    assert [logs_access(level) for level in ("warning", "error", "critical")] == [False] * 3
