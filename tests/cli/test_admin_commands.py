"""`mailroom admin user ...`: administrators made, listed, changed and removed on a real store,
with argon2id hashes and the last full administrator kept."""

from __future__ import annotations

import json

import pytest
from tests.cli.conftest import store

from mailroom.errors import CredentialsRefused


def authenticate(run, name: str, password: str) -> str:
    container = store(run)
    try:
        return container.admin_users.authenticate(name, password, "test").privilege.value
    finally:
        container.close()


def test_an_administrator_is_added_with_a_prompted_password_and_can_log_in(run):
    result = run("admin", "user", "add", "root", input="correct horse\ncorrect horse\n")
    assert "administrator root added (admin)" in result.output
    assert authenticate(run, "root", "correct horse") == "admin"
    with pytest.raises(CredentialsRefused):
        authenticate(run, "root", "wrong horse")


def test_a_read_only_administrator_from_stdin_is_listed(run):
    run("admin", "user", "add", "root", "--password", "correct horse")
    run("admin", "user", "add", "viewer", "--privilege", "read", "--password-stdin", input="just looking\n")
    listed = [json.loads(line) for line in run("admin", "user", "list", "--json").output.splitlines()]
    assert [(u["name"], u["privilege"]) for u in listed] == [("root", "admin"), ("viewer", "read")]
    assert "viewer" in run("admin", "user", "list").output


def test_refusals_are_one_line_messages(run):
    run("admin", "user", "add", "root", "--password", "correct horse")
    assert (
        "exists already" in run("admin", "user", "add", "root", "--password", "another one", ok=False).output
    )
    assert "8 to 1024" in run("admin", "user", "add", "shorty", "--password", "short", ok=False).output
    assert (
        "letters, digits"
        in run("admin", "user", "add", "bad name", "--password", "long enough", ok=False).output
    )
    assert "last full administrator" in run("admin", "user", "remove", "root", ok=False).output
    assert (
        "no administrator"
        in run("admin", "user", "password", "ghost", "--password", "whatever1", ok=False).output
    )


def test_a_password_is_changed_and_a_user_removed(run):
    run("admin", "user", "add", "root", "--password", "correct horse")
    run("admin", "user", "add", "ops", "--password", "ops password")
    run("admin", "user", "password", "ops", "--password", "new password")
    assert authenticate(run, "ops", "new password") == "admin"
    with pytest.raises(CredentialsRefused):
        authenticate(run, "ops", "ops password")
    run("admin", "user", "remove", "ops")
    with pytest.raises(CredentialsRefused):
        authenticate(run, "ops", "new password")
