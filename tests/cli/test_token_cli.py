"""`mailroom token`: create prints a key id and secret once (only a digest is stored) and the
key logs in; list shows keys as a table, never their secrets; revoke ends the key's logins."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select
from tests.cli.conftest import store

from mailroom.errors import AuthenticationFailed
from mailroom.storage.tables import api_keys


def created(run, *args: str) -> tuple[str, str]:
    output = run("token", "create", *args).output
    assert "The secret is not stored and cannot be shown again" in output
    key_id = re.search(r"^key id:\s+(\S+)$", output, re.M)
    secret = re.search(r"^secret:\s+(\S+)$", output, re.M)
    assert key_id, output
    assert secret, output
    return key_id.group(1), secret.group(1)


def add_mailbox(run, mailbox_id: str) -> None:
    run("mailbox", "add", mailbox_id, "--password", "pw")


def test_create_prints_a_key_that_logs_in_and_stores_only_its_digest(run):
    add_mailbox(run, "ALICE")
    key_id, secret = created(run, "alice", "--read-only", "--label", "nightly [bold]report[/bold]")
    container = store(run)
    try:
        principal = container.api_tokens.verify(
            container.api_tokens.authorize_key(key_id, secret).access_token
        )
        assert principal.mailbox_id == "ALICE"
        assert principal.read_only
        with container.db.read() as conn:
            row = conn.execute(select(api_keys)).one()
        assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest() != secret
        assert row.label == "nightly [bold]report[/bold]"
    finally:
        container.close()


def test_create_refuses_an_unknown_mailbox_and_an_eleventh_key(run):
    result = run("token", "create", "NOBODY", ok=False)
    assert "mailbox NOBODY does not exist" in result.output
    add_mailbox(run, "ALICE")
    for _ in range(10):
        created(run, "ALICE")
    assert "has 10 API keys already" in run("token", "create", "ALICE", ok=False).output
    assert "letters, digits" in run("token", "create", "not an id!", ok=False).output


def test_list_shows_every_key_or_a_mailboxs_without_secrets(run):
    assert "no API keys" in run("token", "list").output
    add_mailbox(run, "ALICE")
    add_mailbox(run, "BOB")
    alice_key, alice_secret = created(run, "ALICE", "--label", "[red]not markup[/red]")
    bob_key, _ = created(run, "BOB", "--read-only")
    listed = run("token", "list").output
    assert alice_key in listed
    assert bob_key in listed
    assert alice_secret not in listed
    assert "[red]not markup[/red]" in listed  # shown as text, not read as rich markup
    assert "read-only" in listed
    assert "read-write" in listed
    assert "live" in listed
    only_bob = run("token", "list", "bob").output
    assert bob_key in only_bob
    assert alice_key not in only_bob


def test_revoke_refuses_the_key_and_shows_it_revoked(run):
    add_mailbox(run, "ALICE")
    key_id, secret = created(run, "ALICE")
    container = store(run)
    try:
        pair = container.api_tokens.authorize_key(key_id, secret)
    finally:
        container.close()
    assert f"revoked API key {key_id}" in run("token", "revoke", key_id).output
    assert "revoked" in run("token", "list").output
    container = store(run)
    try:
        with pytest.raises(AuthenticationFailed):
            container.api_tokens.authorize_key(key_id, secret)
        with pytest.raises(AuthenticationFailed):
            container.api_tokens.verify(pair.access_token)
        with pytest.raises(AuthenticationFailed):
            container.api_tokens.refresh("ALICE", pair.refresh_token)
    finally:
        container.close()
    assert "no API key 'mrk_unknown'" in run("token", "revoke", "mrk_unknown", ok=False).output


def test_a_new_password_ends_password_logins_and_a_removal_every_login_and_key(run):
    add_mailbox(run, "ALICE")
    key_id, secret = created(run, "ALICE")
    container = store(run)  # a running server, logged in to before the changes
    try:
        by_password = container.api_tokens.authorize_password("ALICE", "pw")
        by_key = container.api_tokens.authorize_key(key_id, secret)
        for pair in (by_password, by_key):
            container.api_tokens.verify(pair.access_token)
        assert "changed the password" in run("mailbox", "password", "ALICE", "--password", "new").output
        with pytest.raises(AuthenticationFailed):  # the database is read for a refresh: at once
            container.api_tokens.refresh("ALICE", by_password.refresh_token)
        by_key = container.api_tokens.refresh("ALICE", by_key.refresh_token)  # keys keep working
    finally:
        container.close()
    container = store(run)  # a process started since: nothing remembered of the logins
    try:
        with pytest.raises(AuthenticationFailed):
            container.api_tokens.verify(by_password.access_token)
        container.api_tokens.verify(by_key.access_token)
        container.api_tokens.verify(container.api_tokens.authorize_password("ALICE", "new").access_token)
    finally:
        container.close()
    run("mailbox", "remove", "ALICE", "--yes")
    listed = run("token", "list").output
    assert key_id in listed
    assert "revoked" in listed
    run("mailbox", "add", "ALICE", "--password", "new")  # made again: nothing of the old one works
    container = store(run)
    try:
        for attempt in (
            lambda: container.api_tokens.verify(by_key.access_token),
            lambda: container.api_tokens.refresh("ALICE", by_key.refresh_token),
            lambda: container.api_tokens.authorize_key(key_id, secret),
        ):
            with pytest.raises(AuthenticationFailed):
                attempt()
    finally:
        container.close()
