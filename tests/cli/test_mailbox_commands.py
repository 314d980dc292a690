"""`mailroom mailbox`: add refusing an existing id, update and password changing only what they
name, remove refusing while messages wait (or purging them), and a list that fits a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.cli.conftest import store

from mailroom.cli.mailbox import mailbox_lines
from mailroom.domain.mailboxes import Mailbox
from mailroom.domain.messages import ChunkRange, Metadata
from mailroom.services.authentication import MailboxPrincipal
from mailroom.services.mailboxes import MailboxSummary
from mailroom.services.sending import SendRequest

BIG = b"p" * (64 * 1024 + 1)  # stored in the payload store, not in its row


def add(run, mailbox_id, *extra):
    run("mailbox", "add", mailbox_id, "--password", "pw", *extra)


def send(run, sender, recipient, body=b"hello", total=1):
    container = store(run)
    try:
        request = SendRequest(recipient, "", ChunkRange(1, total), Metadata(workflow_id="WF"))
        principal = MailboxPrincipal(container.mailboxes.get(sender))
        return container.sending.send(principal, request, [body]).message_id
    finally:
        container.close()


def mailbox(run, mailbox_id):
    container = store(run)
    try:
        return container.mailboxes.get(mailbox_id)
    finally:
        container.close()


def mailbox_ids(run):
    return [row["mailbox_id"] for row in listed(run)]


def listed(run):
    return [json.loads(line) for line in run("mailbox", "list", "--json").output.splitlines()]


# add


def test_add_refuses_an_existing_mailbox_and_changes_nothing(run):
    add(run, "BOB", "--name", "Bob", "--ods-code", "X26")
    result = run("mailbox", "add", "bob", "--password", "other", ok=False)
    assert result.exit_code == 1
    assert "mailbox BOB already exists" in result.output
    for hint in ("mailroom mailbox update", "mailroom mailbox password", "--replace"):
        assert hint in result.output
    assert mailbox(run, "BOB") == Mailbox("BOB", "Bob", "pw", ods_code="X26")


def test_add_refuses_before_asking_for_a_password(run):
    add(run, "BOB")
    result = run("mailbox", "add", "BOB", ok=False, input="")
    assert "already exists" in result.output
    assert "Password" not in result.output


def test_add_replace_replaces_every_field(run):
    add(run, "BOB", "--name", "Bob", "--ods-code", "X26")
    assert "replaced mailbox BOB" in run("mailbox", "add", "BOB", "--password", "new", "--replace").output
    assert mailbox(run, "BOB") == Mailbox("BOB", "", "new")


def test_add_reads_the_password_from_stdin(run):
    run("mailbox", "add", "BOB", "--password-stdin", input="from stdin\nignored\n")
    assert mailbox(run, "BOB").password == "from stdin"


# update


def test_update_changes_only_the_given_fields(run):
    add(run, "BOB", "--name", "Bob", "--ods-code", "X26", "--org-code", "O1", "--billing-entity", "Wales")
    result = run("mailbox", "update", "bob", "--ods-code", "Y99", "--disable")
    assert "updated mailbox BOB: ods_code, active" in result.output
    assert mailbox(run, "BOB") == Mailbox(
        "BOB", "Bob", "pw", ods_code="Y99", org_code="O1", billing_entity="Wales", active=False
    )
    run("mailbox", "update", "BOB", "--name", "", "--enable")
    assert mailbox(run, "BOB") == Mailbox(
        "BOB", "", "pw", ods_code="Y99", org_code="O1", billing_entity="Wales"
    )


def test_update_of_an_unknown_mailbox_is_a_clear_error(run):
    result = run("mailbox", "update", "NOPE", "--name", "x", ok=False)
    assert result.exit_code == 1
    assert "mailbox NOPE does not exist" in result.output


def test_update_with_nothing_to_change_is_a_usage_error(run):
    add(run, "BOB")
    result = run("mailbox", "update", "BOB", ok=False)
    assert result.exit_code == 2
    assert "nothing to change" in result.output


# password


def test_password_is_asked_for_twice_and_changes_only_the_password(run):
    add(run, "BOB", "--name", "Bob", "--ods-code", "X26")
    result = run("mailbox", "password", "bob", input="n3w\nn3w\n")
    assert "changed the password of mailbox BOB" in result.output
    assert "n3w" not in result.output
    assert mailbox(run, "BOB") == Mailbox("BOB", "Bob", "n3w", ods_code="X26")


def test_password_prompts_again_when_the_two_differ(run):
    add(run, "BOB")
    result = run("mailbox", "password", "BOB", input="one\ntwo\nthree\nthree\n")
    assert "do not match" in result.output
    assert mailbox(run, "BOB").password == "three"


def test_password_from_stdin_or_the_command_line(run):
    add(run, "BOB")
    run("mailbox", "password", "BOB", "--password-stdin", input="piped\r\n")
    assert mailbox(run, "BOB").password == "piped"
    run("mailbox", "password", "BOB", "--password", "given")
    assert mailbox(run, "BOB").password == "given"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("--password-stdin",), "", "standard input has no password"),
        (("--password-stdin", "--password", "x"), "y\n", "not both"),
    ],
)
def test_password_refusals(run, args, stdin, message):
    add(run, "BOB")
    result = run("mailbox", "password", "BOB", *args, ok=False, input=stdin)
    assert message in result.output
    assert mailbox(run, "BOB").password == "pw"


def test_password_of_an_unknown_mailbox_is_refused_before_the_prompt(run):
    result = run("mailbox", "password", "NOPE", ok=False, input="")
    assert result.exit_code == 1
    assert "mailbox NOPE does not exist" in result.output
    assert "Password" not in result.output


# remove


def test_remove_asks_and_removes(run):
    add(run, "ALICE")
    add(run, "BOB")
    result = run("mailbox", "remove", "bob", ok=False, input="n\n")
    assert "Remove mailbox BOB?" in result.output
    assert mailbox_ids(run) == ["ALICE", "BOB"]
    result = run("mailbox", "remove", "bob", input="y\n")
    assert "removed mailbox BOB" in result.output
    assert mailbox_ids(run) == ["ALICE"]


def test_remove_without_a_terminal_or_yes_does_nothing(run):
    add(run, "BOB")
    run("mailbox", "remove", "BOB", ok=False, input="")
    assert mailbox_ids(run) == ["BOB"]
    run("mailbox", "remove", "BOB", "--yes", input="")
    assert mailbox_ids(run) == []


def test_remove_is_refused_while_messages_wait_and_names_how_many(run):
    add(run, "ALICE")
    add(run, "BOB")
    send(run, "ALICE", "BOB")
    send(run, "ALICE", "BOB")
    send(run, "ALICE", "BOB", total=2)
    result = run("mailbox", "remove", "BOB", "--yes", ok=False)
    assert result.exit_code == 1
    assert "mailbox BOB has 2 messages waiting in its inbox and 1 upload in progress" in result.output
    assert "--purge" in result.output
    assert mailbox_ids(run) == ["ALICE", "BOB"]


def test_remove_purge_deletes_the_waiting_messages_and_their_payloads(run):
    add(run, "ALICE")
    add(run, "BOB")
    waiting = send(run, "ALICE", "BOB", BIG)
    kept = send(run, "BOB", "ALICE", BIG)  # in ALICE's inbox: ALICE's now
    result = run("mailbox", "remove", "BOB", "--purge", input="y\n")
    assert "Remove mailbox BOB and delete the 1 message waiting in its inbox, with their payloads?" in (
        result.output
    )
    assert "1 messages deleted" in result.output
    assert "1 messages it sent still wait in other inboxes (kept)" in result.output
    container = store(run)
    try:
        assert set(container.payloads.message_ids()) == {kept}
        assert [row["waiting"] for row in listed(run)] == [1]
        assert waiting not in set(container.payloads.message_ids())
    finally:
        container.close()


def test_remove_of_an_unknown_mailbox_is_a_clear_error(run):
    result = run("mailbox", "remove", "NOPE", "--yes", ok=False)
    assert result.exit_code == 1
    assert "mailbox NOPE does not exist" in result.output


# list


def test_list_has_a_header_and_counts(run):
    add(run, "ALICE", "--name", "Alice's surgery", "--ods-code", "X26")
    add(run, "BOB")
    send(run, "ALICE", "BOB")
    send(run, "BOB", "BOB")
    container = store(run)
    container.mailboxes.record_handshake("ALICE")
    handshake = container.mailboxes.get("ALICE").last_handshake_at
    container.close()
    run("mailbox", "disable", "BOB")

    lines = run("mailbox", "list").output.splitlines()

    assert lines[0].split() == [
        "Mailbox",
        "Name",
        "ODS",
        "code",
        "State",
        "Waiting",
        "Last",
        "handshake",
        "(UTC)",
    ]
    assert lines[1].split() == [
        "ALICE",
        "Alice's",
        "surgery",
        "X26",
        "active",
        "0",
        *f"{handshake:%Y-%m-%d %H:%M}".split(),
    ]
    assert lines[2].split() == ["BOB", "disabled", "2", "never"]
    rows = listed(run)
    assert [(row["mailbox_id"], row["waiting"]) for row in rows] == [("ALICE", 0), ("BOB", 2)]
    assert datetime.fromisoformat(rows[0]["last_handshake_at"]) == handshake
    assert rows[1]["last_handshake_at"] is None
    assert all("password" not in row for row in rows)


def test_list_without_mailboxes_says_how_to_add_one(run):
    assert "mailroom mailbox add" in run("mailbox", "list").output


def summary(mailbox_id, name, waiting=0, handshake=None):
    return MailboxSummary(
        Mailbox(mailbox_id, name, "pw", ods_code="X26", last_handshake_at=handshake), waiting
    )


def test_list_lines_fit_the_width_by_shortening_names_only():
    at = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    summaries = [summary("X26ABC1", "A practice with a very long name " * 3, 12345, at), summary("B", "Bob")]
    lines = mailbox_lines(summaries, 80)
    assert max(len(line) for line in lines) == 80
    assert lines[1] == "X26ABC1  A practice with a ver…  X26       active    12345  2024-05-01 09:30"
    assert lines[2].split() == ["B", "Bob", "X26", "active", "0", "never"]
    assert mailbox_lines(summaries, None)[1].count("A practice") == 3  # not a terminal: whole


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_list_on_an_80_column_terminal(run):
    """The real command on a pseudo-terminal 80 columns wide (rows, not a pipe: the width is the
    terminal's)."""
    add(run, "X26ABC1", "--name", "A practice with a very long name indeed, " * 2, "--ods-code", "X26")
    add(run, "BOB", "--name", "Bob")
    output = on_terminal(
        [sys.executable, "-m", "mailroom", "mailbox", "list", "--data-dir", str(run.data_dir)]
    )
    lines = output.splitlines()
    assert lines[0].startswith("Mailbox  Name")
    assert [line.split()[0] for line in lines[1:]] == ["BOB", "X26ABC1"]
    assert lines[2].endswith("never")
    assert "…" in lines[2]
    assert max(len(line) for line in lines) == 80


def on_terminal(command: list[str], columns: int = 80) -> str:
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(
        command, stdin=follower, stdout=follower, stderr=follower, env=env, cwd=Path.cwd()
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command has ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0, b"".join(chunks)
    return b"".join(chunks).decode().replace("\r\n", "\n")
