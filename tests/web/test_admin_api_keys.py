"""The administration API's CreateApiKey, ListApiKeys and RevokeApiKey, over HTTP on both stacks:
the secret in the answer once and never in a list or the audit log, privileges, revocation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.e2e.admin_harness import ROOT, VIEWER

from mailroom.container import Container
from mailroom.domain.admin import Privilege
from mailroom.errors import AuthenticationFailed
from mailroom.web.app import create_app


@pytest.fixture
def settings(settings):
    return settings.replace(admin_api=True)


@pytest.fixture
def api(settings, container: Container) -> Iterator[TestClient]:
    container.admin_users.add(*ROOT)
    container.admin_users.add(*VIEWER, privilege=Privilege.READ)
    with TestClient(create_app(settings, container)) as client:
        yield client


def call(api: TestClient, function: str, data: dict[str, Any] | None = None, *, user=ROOT) -> Any:
    return api.post(f"/api/invoke/{function}", data=data or {}, auth=user).json()


def test_a_key_made_through_the_api_logs_in_lists_without_its_secret_and_revokes(api, container):
    made = call(api, "CreateApiKey", {"mailboxId": "alice", "readOnly": "true", "label": "ci"})
    assert made["statusCode"] == "succeeded", made
    key = made["result"]
    assert key["mailboxId"] == "ALICE"
    assert key["readOnly"] is True
    assert key["revoked"] is None
    pair = container.api_tokens.authorize_key(key["keyId"], key["secret"])
    assert container.api_tokens.verify(pair.access_token).read_only

    listed = call(api, "ListApiKeys", {"mailboxId": "ALICE"}, user=VIEWER)["result"]
    assert [entry["keyId"] for entry in listed] == [key["keyId"]]
    assert "secret" not in listed[0]
    assert listed[0]["lastUsed"] is not None
    assert call(api, "ListApiKeys", {"mailboxId": "BOB"})["result"] == []

    assert call(api, "RevokeApiKey", {"keyId": key["keyId"]}, user=VIEWER)["statusCode"] == "failed"
    assert call(api, "RevokeApiKey", {"keyId": key["keyId"]})["statusCode"] == "succeeded"
    with pytest.raises(AuthenticationFailed):
        container.api_tokens.verify(pair.access_token)
    assert call(api, "ListApiKeys")["result"][0]["revoked"] is not None
    with container.db.read() as conn:
        logged = conn.exec_driver_sql("SELECT arguments FROM audit_log").scalars().all()
    assert logged
    assert not any(key["secret"] in text for text in logged)


def test_create_refuses_an_unknown_mailbox_and_a_viewer(api):
    assert call(api, "CreateApiKey", {"mailboxId": "NOBODY"})["statusCode"] == "failed"
    assert call(api, "CreateApiKey", {"mailboxId": "ALICE"}, user=VIEWER)["statusCode"] == "failed"
    assert call(api, "RevokeApiKey", {"keyId": "mrk_unknown"})["statusCode"] == "failed"
    assert call(api, "ListApiKeys")["result"] == []


def test_set_mailbox_password_ends_password_logins_and_delete_mailbox_revokes_keys(api, container):
    made = call(api, "CreateApiKey", {"mailboxId": "ALICE"})["result"]
    by_password = container.api_tokens.authorize_password("ALICE", "password")
    by_key = container.api_tokens.authorize_key(made["keyId"], made["secret"])
    changed = call(api, "SetMailboxPassword", {"mailboxId": "ALICE", "password": "another-password"})
    assert changed["statusCode"] == "succeeded", changed
    with pytest.raises(AuthenticationFailed):
        container.api_tokens.verify(by_password.access_token)
    with pytest.raises(AuthenticationFailed):
        container.api_tokens.refresh("ALICE", by_password.refresh_token)
    container.api_tokens.verify(by_key.access_token)  # an API key's login does not use the password
    container.api_tokens.verify(
        container.api_tokens.authorize_password("ALICE", "another-password").access_token
    )

    deleted = call(api, "DeleteMailbox", {"mailboxId": "ALICE", "purge": "true"})
    assert deleted["statusCode"] == "succeeded", deleted
    with pytest.raises(AuthenticationFailed):
        container.api_tokens.verify(by_key.access_token)
    assert call(api, "ListApiKeys", {"mailboxId": "ALICE"})["result"][0]["revoked"] is not None
