"""The JSON API's token flows over HTTP, through both faces, on both stacks: API key logins,
refresh rotation (the new pair works, the old refresh token is refused, its reuse revokes the
chain), ``Authorization`` bare and as ``Bearer`` on MFT Gateway's and D4Science's routes, and
expiry of access tokens and logins on a fixed clock the container reads; a changed password or a
removed mailbox ending its logins, in this process and in another one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import MAILBOXES

from mailroom.clock import FixedClock
from mailroom.container import Container, build_container
from mailroom.settings import Settings
from mailroom.web.app import create_app

from ._json_api import PASSWORD

#: A read on each face.
READS = ("/message/inbox", "/2/messages/get-received-messages")


@pytest.fixture
def revocation_ttl() -> timedelta:
    """``api_revocation_ttl``: 0 (read every time) unless a test parametrizes it."""
    return timedelta(0)


@pytest.fixture
def settings(settings: Settings, revocation_ttl: timedelta) -> Settings:
    """Revocations seen at once, no lockout, and short lifetimes to step the clock past."""
    return settings.replace(
        api_revocation_ttl=revocation_ttl,
        api_lockout_failures=0,
        api_token_lifetime=timedelta(minutes=15),
        api_login_lifetime=timedelta(hours=2),
    )


@pytest.fixture
def api(settings: Settings, container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(settings, container)) as test_client:
        yield test_client


def authorize(api: TestClient, **body: str) -> dict[str, Any]:
    response = api.post("/authorize", json=body)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    assert found["apiToken"] == found["api_token"]
    assert found["refreshToken"] == found["refresh_token"]
    return found


def refresh(api: TestClient, username: str, token: str) -> Any:
    return api.post("/refresh-session", json={"username": username, "refreshToken": token})


def statuses(api: TestClient, token: str) -> set[int]:
    """What each face's read answers for ``token``, bare and as ``Bearer``."""
    found = set()
    for path in READS:
        for header in (token, f"Bearer {token}", f"bearer  {token} "):
            found.add(api.get(path, headers={"authorization": header}).status_code)
    return found


def assert_refused(response: Any, path: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert isinstance(body["message"], str)
    if path.startswith("/2/"):
        assert body["success"] is False
        assert body["result"] is None
    assert response.headers["www-authenticate"].startswith("Bearer")


def assert_no_access(api: TestClient, token: str) -> None:
    for path in READS:
        for header in (token, f"Bearer {token}"):
            assert_refused(api.get(path, headers={"authorization": header}), path)


# -- logging in -----------------------------------------------------------------------------------


def test_password_login_works_bare_and_as_bearer_on_both_faces(api: TestClient) -> None:
    pair = authorize(api, username="alice", password=PASSWORD)  # mailbox ids in any case
    assert pair["apiTokenExpiryIn"] == 15 * 60
    assert statuses(api, pair["apiToken"]) == {200}
    sent = api.post(
        "/message/submit",
        content=b"hi",
        headers={"authorization": f"Bearer {pair['apiToken']}", "as2-to": "BOB"},
    )
    assert sent.status_code == 202, sent.text


def test_api_key_login_and_its_read_only_flag(api: TestClient, container: Container) -> None:
    writer = container.api_tokens.create_key("ALICE", label="writer")
    reader = container.api_tokens.create_key("ALICE", read_only=True)
    for key, status in ((writer, 202), (reader, 403)):
        pair = authorize(api, tokenID=key.info.key_id, tokenSecret=key.secret)
        assert statuses(api, pair["apiToken"]) == {200}
        for header in (pair["apiToken"], f"Bearer {pair['apiToken']}"):
            sent = api.post(
                "/message/submit", content=b"x", headers={"authorization": header, "as2-to": "BOB"}
            )
            assert sent.status_code == status, sent.text
            wrote = api.post(
                "/2/messages/write-message",
                headers={"authorization": header},
                json={"subject": "s", "body": "b", "recipients": [{"id": "BOB"}]},
            )
            assert wrote.status_code == (200 if status == 202 else 403), wrote.text
    # a key login refreshes under its mailbox id or its key id, and stays read-only
    pair = authorize(api, tokenID=reader.info.key_id, tokenSecret=reader.secret)
    again = refresh(api, reader.info.key_id, pair["refreshToken"])
    assert again.status_code == 200, again.text
    again = refresh(api, "ALICE", again.json()["refreshToken"])
    assert again.status_code == 200, again.text
    token = again.json()["apiToken"]
    refused = api.post("/message/submit", content=b"x", headers={"authorization": token, "as2-to": "BOB"})
    assert refused.status_code == 403


def test_refused_key_logins_are_401_alike(api: TestClient, container: Container) -> None:
    key = container.api_tokens.create_key("BOB")
    bodies = []
    for body in (
        {"tokenID": key.info.key_id, "tokenSecret": "wrong"},
        {"tokenID": "mrk_" + "0" * 32, "tokenSecret": key.secret},
        {"username": "BOB", "password": "wrong"},
        {"username": "NOBODY", "password": PASSWORD},
    ):
        response = api.post("/authorize", json=body)
        assert response.status_code == 401, response.text
        bodies.append(response.json())
    assert all(b == bodies[0] for b in bodies)  # which part was wrong is never said
    container.api_tokens.revoke_key(key.info.key_id)
    response = api.post("/authorize", json={"tokenID": key.info.key_id, "tokenSecret": key.secret})
    assert response.status_code == 401
    assert response.json() == bodies[0]


def test_revoking_a_key_ends_its_logins(api: TestClient, container: Container) -> None:
    key = container.api_tokens.create_key("BOB")
    pair = authorize(api, tokenID=key.info.key_id, tokenSecret=key.secret)
    assert statuses(api, pair["apiToken"]) == {200}
    container.api_tokens.revoke_key(key.info.key_id)
    assert_no_access(api, pair["apiToken"])
    assert refresh(api, "BOB", pair["refreshToken"]).status_code == 401


# -- credential changes ---------------------------------------------------------------------------

#: Long enough that only a change made in this process can explain a refusal within it.
SLOW = timedelta(seconds=30)


def key_login(api: TestClient, container: Container, mailbox: str) -> dict[str, Any]:
    key = container.api_tokens.create_key(mailbox)
    return authorize(api, tokenID=key.info.key_id, tokenSecret=key.secret)


@pytest.mark.parametrize("revocation_ttl", [SLOW])
def test_a_changed_password_ends_password_logins_at_once_in_its_process(
    api: TestClient, container: Container
) -> None:
    first = authorize(api, username="ALICE", password=PASSWORD)
    second = authorize(api, username="ALICE", password=PASSWORD)
    by_key = key_login(api, container, "ALICE")
    bob = authorize(api, username="BOB", password=PASSWORD)
    for pair in (first, second, by_key, bob):
        assert statuses(api, pair["apiToken"]) == {200}  # each login's state now remembered
    container.mailboxes.set_password("ALICE", "a new password")  # as the admin API does
    for pair in (first, second):
        assert_no_access(api, pair["apiToken"])  # at once, though api_revocation_ttl is 30 s
        assert_refused(refresh(api, "ALICE", pair["refreshToken"]), "/refresh-session")
    assert_refused(api.post("/authorize", json={"username": "ALICE", "password": PASSWORD}), "/authorize")
    fresh = authorize(api, username="ALICE", password="a new password")
    assert statuses(api, fresh["apiToken"]) == {200}
    assert refresh(api, "ALICE", fresh["refreshToken"]).status_code == 200
    # an API key does not use the password: its login stays, and so do other mailboxes'
    assert statuses(api, by_key["apiToken"]) == {200}
    assert refresh(api, "ALICE", by_key["refreshToken"]).status_code == 200
    assert statuses(api, bob["apiToken"]) == {200}


@pytest.mark.parametrize("revocation_ttl", [SLOW])
def test_a_password_changed_by_another_process_ends_access_tokens_within_the_ttl(
    api: TestClient, container: Container, settings: Settings, clock: FixedClock
) -> None:
    pair = authorize(api, username="ALICE", password=PASSWORD)
    assert statuses(api, pair["apiToken"]) == {200}
    other = build_container(settings, clock=clock, payloads=container.payloads, migrate=False)
    try:  # `mailroom mailbox password`, or another `serve --workers` process
        other.mailboxes.set_password("ALICE", "a new password")
    finally:
        other.close()
    # the refresh token is checked against the database: refused at once everywhere
    assert_refused(refresh(api, "ALICE", pair["refreshToken"]), "/refresh-session")
    # the access token only once this process's memory of the login is api_revocation_ttl old
    clock.advance(SLOW - timedelta(seconds=1))
    assert statuses(api, pair["apiToken"]) == {200}
    clock.advance(timedelta(seconds=1))
    assert_no_access(api, pair["apiToken"])
    assert statuses(api, authorize(api, username="ALICE", password="a new password")["apiToken"]) == {200}


@pytest.mark.parametrize("revocation_ttl", [SLOW])
def test_removing_a_mailbox_ends_every_login_and_revokes_its_api_keys(
    api: TestClient, container: Container
) -> None:
    key = container.api_tokens.create_key("BARRY")
    by_key = authorize(api, tokenID=key.info.key_id, tokenSecret=key.secret)
    by_password = authorize(api, username="BARRY", password=PASSWORD)
    for pair in (by_key, by_password):
        assert statuses(api, pair["apiToken"]) == {200}
    container.mailboxes.remove("BARRY")
    for pair in (by_key, by_password):
        assert_no_access(api, pair["apiToken"])
        assert_refused(refresh(api, "BARRY", pair["refreshToken"]), "/refresh-session")
    assert [info.revoked_at is not None for info in container.api_tokens.list_keys("BARRY")] == [True]
    # made again, the mailbox starts with no logins and no live key
    container.mailboxes.add(MAILBOXES[2])
    refused = api.post("/authorize", json={"tokenID": key.info.key_id, "tokenSecret": key.secret})
    assert_refused(refused, "/authorize")
    assert_no_access(api, by_password["apiToken"])
    assert statuses(api, authorize(api, username="BARRY", password=PASSWORD)["apiToken"]) == {200}


# -- refresh rotation -----------------------------------------------------------------------------


def test_refresh_rotates_the_pair(api: TestClient) -> None:
    first = authorize(api, username="ALICE", password=PASSWORD)
    second = refresh(api, "ALICE", first["refreshToken"])
    assert second.status_code == 200, second.text
    pair = second.json()
    # (the access token may equal the old one: same login and expiry second, same claims)
    assert pair["refreshToken"] != first["refreshToken"]
    assert statuses(api, pair["apiToken"]) == {200}
    third = refresh(api, "alice", pair["refreshToken"])  # mailbox ids in any case
    assert third.status_code == 200, third.text
    assert statuses(api, third.json()["apiToken"]) == {200}


def test_reusing_a_spent_refresh_token_revokes_the_whole_chain(api: TestClient) -> None:
    first = authorize(api, username="ALICE", password=PASSWORD)
    other = authorize(api, username="ALICE", password=PASSWORD)  # another chain, untouched
    second = refresh(api, "ALICE", first["refreshToken"]).json()
    third = refresh(api, "ALICE", second["refreshToken"]).json()
    reused = refresh(api, "ALICE", first["refreshToken"])
    assert_refused(reused, "/refresh-session")
    for token in (first["apiToken"], second["apiToken"], third["apiToken"]):
        assert_no_access(api, token)  # within api_revocation_ttl (0 here: at once)
    assert_refused(refresh(api, "ALICE", third["refreshToken"]), "/refresh-session")
    assert statuses(api, other["apiToken"]) == {200}
    assert refresh(api, "ALICE", other["refreshToken"]).status_code == 200


def test_refresh_under_another_username_is_refused_and_spends_nothing(api: TestClient) -> None:
    pair = authorize(api, username="ALICE", password=PASSWORD)
    for username in ("BOB", "", "ALICE ", "NOBODY"):
        if username == "ALICE ":
            continue  # surrounding spaces are forgiven (stripped like the id's case)
        assert_refused(refresh(api, username, pair["refreshToken"]), "/refresh-session")
    assert refresh(api, "ALICE", pair["refreshToken"]).status_code == 200


def test_a_made_up_refresh_token_is_401(api: TestClient) -> None:
    assert_refused(refresh(api, "ALICE", "not-a-token"), "/refresh-session")


# -- expiry ---------------------------------------------------------------------------------------


def test_access_tokens_expire_and_refresh_gives_fresh_ones(api: TestClient, clock: FixedClock) -> None:
    pair = authorize(api, username="BOB", password=PASSWORD)
    clock.advance(timedelta(minutes=14, seconds=59))
    assert statuses(api, pair["apiToken"]) == {200}
    clock.advance(timedelta(seconds=1))
    assert_no_access(api, pair["apiToken"])
    fresh = refresh(api, "BOB", pair["refreshToken"])  # the refresh token outlives it
    assert fresh.status_code == 200, fresh.text
    assert statuses(api, fresh.json()["apiToken"]) == {200}


def test_a_login_expires_whole_and_tokens_never_outlive_it(api: TestClient, clock: FixedClock) -> None:
    pair = authorize(api, username="BOB", password=PASSWORD)
    clock.advance(timedelta(hours=1, minutes=50))
    late = refresh(api, "BOB", pair["refreshToken"]).json()
    assert late["apiTokenExpiryIn"] == 10 * 60  # cut to the login's end, not 15 minutes
    clock.advance(timedelta(minutes=10))
    assert_no_access(api, late["apiToken"])
    assert_refused(refresh(api, "BOB", late["refreshToken"]), "/refresh-session")
    assert statuses(api, authorize(api, username="BOB", password=PASSWORD)["apiToken"]) == {200}


def test_a_token_signed_for_one_mailbox_reads_only_its_own(api: TestClient) -> None:
    alice = authorize(api, username="ALICE", password=PASSWORD)["apiToken"]
    bob = authorize(api, username="BOB", password=PASSWORD)["apiToken"]
    sent = api.post("/message/submit", content=b"x", headers={"authorization": alice, "as2-to": "BOB"})
    message = sent.json()["as2MessageId"]
    assert api.get(f"/message/inbox/{message}", headers={"authorization": f"Bearer {bob}"}).status_code == 200
    assert api.get(f"/message/inbox/{message}", headers={"authorization": alice}).status_code == 404
    mine = api.get("/2/messages/get-received-messages", headers={"authorization": f"Bearer {alice}"})
    assert mine.json()["result"] == []
