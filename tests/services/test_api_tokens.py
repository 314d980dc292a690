"""The JSON messaging API's tokens on real databases: password and key logins, signed access
tokens shared by every process, rotating refresh tokens whose reuse revokes the chain, API keys
and their revocation, seen by another process within the revocation TTL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import event, select
from tests.conftest import PASSWORD

from mailroom.container import Container, build_container
from mailroom.errors import AuthenticationFailed, Conflict, NotFound, TooManyAttempts
from mailroom.services.api_tokens import MAX_LIVE_KEYS, SIGNING_KEY_NAME, ApiPrincipal
from mailroom.services.mailboxes import MailboxChanges
from mailroom.storage.repos import api_tokens as api_tokens_repo
from mailroom.storage.repos import mailboxes, server_keys
from mailroom.storage.tables import api_keys, api_logins, refresh_tokens

TTL = timedelta(seconds=5)  # the default api_revocation_ttl


@pytest.fixture
def other(container: Container) -> Iterator[Container]:
    """Another server process on the same database and payload store, with the same clock."""
    built = build_container(
        container.settings, clock=container.clock, payloads=container.payloads, migrate=False
    )
    yield built
    built.close()


def refused(call, *args, **kwargs) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as caught:
        call(*args, **kwargs)
    assert caught.value.description == "Invalid Authentication Token"  # the same for every refusal
    return caught.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- password logins ------------------------------------------------------------------------------


def test_a_password_login_gives_tokens_that_verify_as_the_mailbox(container):
    pair = container.api_tokens.authorize_password("alice", PASSWORD)  # ids are case-insensitive
    assert pair.expires_in == 15 * 60
    assert pair.access_token.startswith("v1.")
    assert pair.access_token.count(".") == 2
    principal = container.api_tokens.verify(pair.access_token)
    assert principal.mailbox_id == "ALICE"
    assert principal.read_only is False
    with container.db.read() as conn:
        login = conn.execute(select(api_logins).where(api_logins.c.login_id == principal.login_id)).one()
        stored = conn.execute(select(refresh_tokens.c.token_hash)).scalars().all()
    assert login.mailbox_id == "ALICE"
    assert login.key_id is None
    assert login.expires_at == container.clock.now() + timedelta(days=30)
    assert stored == [hashlib.sha256(pair.refresh_token.encode()).hexdigest()]  # never the token itself


def test_wrong_password_unknown_and_inactive_mailboxes_are_refused_alike(container):
    service = container.api_tokens
    reasons = [
        refused(service.authorize_password, "ALICE", "Sekr1t-guess").reason,
        refused(service.authorize_password, "ALICE", "").reason,
        refused(service.authorize_password, "NOBODY", PASSWORD).reason,
        refused(service.authorize_password, "not an id!", PASSWORD).reason,
    ]
    container.mailboxes.set_active("BOB", False)
    reasons.append(refused(service.authorize_password, "BOB", PASSWORD).reason)
    assert all(reasons)
    assert len(set(reasons)) == len(reasons)
    assert not any("Sekr1t" in reason for reason in reasons)  # never a password
    with container.db.read() as conn:
        assert conn.execute(select(api_logins)).all() == []


def test_a_client_failing_too_often_is_locked_out_even_with_the_right_password(container):
    service = container.api_tokens
    limit = container.settings.api_lockout_failures
    for _ in range(limit):
        refused(service.authorize_password, "ALICE", "guess", client="203.0.113.9")
    with pytest.raises(TooManyAttempts):
        service.authorize_password("ALICE", PASSWORD, client="203.0.113.9")
    with pytest.raises(TooManyAttempts):
        service.authorize_key("mrk_x", "guess", client="203.0.113.9")
    service.authorize_password("ALICE", PASSWORD, client="203.0.113.10")  # another client is not


# -- access tokens --------------------------------------------------------------------------------


def test_tampered_garbage_and_foreign_tokens_are_refused(container):
    service = container.api_tokens
    token = service.authorize_password("ALICE", PASSWORD).access_token
    version, payload, mac = token.split(".")
    claims = json.loads(unb64(payload))
    as_bob = b64(json.dumps({**claims, "m": "BOB"}).encode())
    read_only = b64(json.dumps({**claims, "r": True}).encode())
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    for bad in (
        f"{version}.{as_bob}.{mac}",
        f"{version}.{read_only}.{mac}",
        f"{version}.{payload}.{flipped}",
        f"{version}.{payload}.{mac}A",
        f"v2.{payload}.{mac}",
        f"{version}.{payload}",
        "",
        "garbage",
        "v1..",
        "v1.é.x",
        token + "." + mac,
        "v1." + "A" * 10_000 + "." + mac,
    ):
        refused(service.verify, bad)
    assert service.verify(token).mailbox_id == "ALICE"


def test_a_token_signed_with_another_key_is_refused(container):
    token = container.api_tokens.authorize_password("ALICE", PASSWORD).access_token
    version, payload, _ = token.split(".")
    forged = b64(__import__("hmac").new(b"k" * 32, f"{version}.{payload}".encode(), hashlib.sha256).digest())
    assert refused(container.api_tokens.verify, f"{version}.{payload}.{forged}").reason == (
        "access token with a wrong signature"
    )


def test_an_expired_access_token_is_refused_and_a_refresh_gives_a_new_one(container, clock):
    service = container.api_tokens
    pair = service.authorize_password("ALICE", PASSWORD)
    clock.advance(timedelta(minutes=15))
    assert "expired" in refused(service.verify, pair.access_token).reason
    fresh = service.refresh("ALICE", pair.refresh_token)
    assert service.verify(fresh.access_token).mailbox_id == "ALICE"


def test_the_chain_ends_at_the_login_lifetime(container, clock):
    service = container.api_tokens
    pair = service.authorize_password("ALICE", PASSWORD)
    clock.advance(timedelta(days=30) - timedelta(minutes=5))
    near_end = service.refresh("alice", pair.refresh_token)
    assert near_end.expires_in == 5 * 60  # never past the login
    clock.advance(timedelta(minutes=5))
    refused(service.verify, near_end.access_token)
    refused(service.refresh, "ALICE", near_end.refresh_token)


def test_another_process_shares_the_signing_key_and_accepts_the_tokens(container, other):
    pair = container.api_tokens.authorize_password("ALICE", PASSWORD)
    principal = other.api_tokens.verify(pair.access_token)
    assert principal == container.api_tokens.verify(pair.access_token)
    fresh = other.api_tokens.refresh("ALICE", pair.refresh_token)  # the chain is shared too
    assert container.api_tokens.verify(fresh.access_token).login_id == principal.login_id
    with container.db.read() as conn:
        assert len(server_keys.get(conn, SIGNING_KEY_NAME) or b"") == 32


def test_verifying_costs_no_query_while_the_revocation_state_is_fresh(container, clock):
    token = container.api_tokens.authorize_password("ALICE", PASSWORD).access_token
    container.api_tokens.verify(token)
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(container.db.engine, "before_cursor_execute", listener)
    try:
        for _ in range(5):
            container.api_tokens.verify(token)
        assert statements == []
        clock.advance(TTL)
        container.api_tokens.verify(token)
        assert [sql.split()[0] for sql in statements if sql != "BEGIN"] == ["SELECT"]  # read again, once
    finally:
        event.remove(container.db.engine, "before_cursor_execute", listener)


def test_verifying_from_a_coroutine_reads_postgresql_off_the_event_loop(
    container, other, clock, stack, monkeypatch
):
    """A login's state not cached: read on the event loop on SQLite (one row), in a worker
    thread on PostgreSQL (a network round trip there would hold up every request of the
    process); either way a revocation made by another process is seen after the TTL."""
    pair = container.api_tokens.authorize_password("ALICE", PASSWORD)
    readers: list[threading.Thread] = []
    read = api_tokens_repo.login_alive

    def spy(conn, login_id, now):
        readers.append(threading.current_thread())
        return read(conn, login_id, now)

    monkeypatch.setattr(api_tokens_repo, "login_alive", spy)

    async def verify() -> tuple[threading.Thread, ApiPrincipal]:
        return threading.current_thread(), await other.api_tokens.verify_async(pair.access_token)

    loop_thread, principal = asyncio.run(verify())
    assert principal == ApiPrincipal("ALICE", False, principal.login_id)
    assert len(readers) == 1
    assert (readers[0] is loop_thread) is (stack == "sqlite")
    asyncio.run(verify())
    assert len(readers) == 1  # cached for the TTL: no read at all
    container.api_tokens.revoke_logins("ALICE")
    clock.advance(TTL)
    with pytest.raises(AuthenticationFailed):
        asyncio.run(verify())
    assert len(readers) == 2


# -- refresh tokens -------------------------------------------------------------------------------


def test_a_refresh_rotates_the_token_within_the_same_login(container):
    service = container.api_tokens
    first = service.authorize_password("ALICE", PASSWORD)
    second = service.refresh("ALICE", first.refresh_token)
    third = service.refresh("alice", second.refresh_token)
    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    logins = {service.verify(pair.access_token).login_id for pair in (first, second, third)}
    assert len(logins) == 1
    with container.db.read() as conn:
        rows = conn.execute(select(refresh_tokens.c.spent_at)).scalars().all()
    assert sorted(spent is None for spent in rows) == [False, False, True]  # two spent, one live


def test_reusing_a_spent_refresh_token_revokes_the_whole_chain(container, other, clock):
    service = container.api_tokens
    first = service.authorize_password("ALICE", PASSWORD)
    second = service.refresh("ALICE", first.refresh_token)
    other.api_tokens.verify(second.access_token)  # the other process remembers it alive

    assert "reused" in refused(service.refresh, "ALICE", first.refresh_token).reason
    refused(service.refresh, "ALICE", second.refresh_token)  # the chain's live token too
    refused(service.verify, second.access_token)  # this process knows at once
    refused(service.verify, first.access_token)
    assert other.api_tokens.verify(second.access_token).mailbox_id == "ALICE"  # until the TTL
    clock.advance(TTL)
    refused(other.api_tokens.verify, second.access_token)
    with container.db.read() as conn:
        login = conn.execute(select(api_logins)).one()
    assert login.revoked_at is not None
    assert login.revoked_reason == "spent refresh token reused"
    # another login of the same mailbox is untouched
    unrelated = service.authorize_password("ALICE", PASSWORD)
    assert service.verify(unrelated.access_token).mailbox_id == "ALICE"


def test_concurrent_refreshes_of_one_token_give_one_pair_and_revoke_the_chain(container):
    service = container.api_tokens
    pair = service.authorize_password("ALICE", PASSWORD)
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            outcomes.append(service.refresh("ALICE", pair.refresh_token))
        except AuthenticationFailed as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [outcome for outcome in outcomes if not isinstance(outcome, AuthenticationFailed)]
    assert len(won) == 1
    assert len(outcomes) == 4
    refused(service.verify, won[0].access_token)  # type: ignore[attr-defined]


def test_a_refresh_under_another_username_is_refused_and_spends_nothing(container):
    service = container.api_tokens
    pair = service.authorize_password("ALICE", PASSWORD)
    refused(service.refresh, "BOB", pair.refresh_token)
    refused(service.refresh, "ALICE", "not a refresh token")
    refused(service.refresh, "ALICE", "")
    assert service.verify(service.refresh("ALICE", pair.refresh_token).access_token).mailbox_id == "ALICE"


# -- API keys -------------------------------------------------------------------------------------


def test_a_key_login_is_read_only_when_the_key_is_and_records_its_use(container, clock):
    service = container.api_tokens
    created = service.create_key("bob", read_only=True, label="reporting job")
    info = created.info
    assert info.mailbox_id == "BOB"
    assert info.read_only
    assert info.label == "reporting job"
    assert info.last_used_at is None
    assert info.revoked_at is None
    assert info.created_at == clock.now()
    clock.advance(timedelta(seconds=3))
    pair = service.authorize_key(info.key_id, created.secret)
    principal = service.verify(pair.access_token)
    assert principal == ApiPrincipal("BOB", True, principal.login_id)
    [listed] = service.list_keys("BOB")
    assert listed.last_used_at == clock.now()
    with container.db.read() as conn:
        row = conn.execute(select(api_keys)).one()
    assert row.secret_hash == hashlib.sha256(created.secret.encode()).hexdigest()
    assert len(created.secret) >= 43  # 256 bits, base64url
    # the refresh username may be the mailbox id or the key id
    second = service.refresh(info.key_id, pair.refresh_token)
    third = service.refresh("BOB", second.refresh_token)
    assert service.verify(third.access_token).read_only


def test_a_wrong_secret_or_unknown_key_is_refused(container):
    service = container.api_tokens
    created = service.create_key("ALICE")
    refused(service.authorize_key, created.info.key_id, created.secret + "x")
    refused(service.authorize_key, created.info.key_id, "")
    refused(service.authorize_key, "mrk_unknown", created.secret)
    refused(service.authorize_key, "x" * 5000, created.secret)
    assert service.list_keys()[0].last_used_at is None


def test_revoking_a_key_refuses_it_and_ends_its_logins(container, other, clock):
    service = container.api_tokens
    created = service.create_key("ALICE")
    pair = service.authorize_key(created.info.key_id, created.secret)
    password_login = service.authorize_password("ALICE", PASSWORD)
    other.api_tokens.verify(pair.access_token)  # remembered alive over there

    service.revoke_key(created.info.key_id)
    refused(service.authorize_key, created.info.key_id, created.secret)
    refused(service.verify, pair.access_token)  # at once here
    refused(service.refresh, "ALICE", pair.refresh_token)
    assert other.api_tokens.verify(pair.access_token)  # within the TTL over there
    clock.advance(TTL)
    refused(other.api_tokens.verify, pair.access_token)
    assert service.verify(password_login.access_token).mailbox_id == "ALICE"  # not a key login
    [info] = service.list_keys()
    assert info.revoked_at is not None
    service.revoke_key(created.info.key_id)  # again: nothing changes
    assert service.list_keys()[0].revoked_at == info.revoked_at
    with pytest.raises(NotFound):
        service.revoke_key("mrk_unknown")


def test_keys_need_a_mailbox_and_at_most_ten_live_ones(container):
    service = container.api_tokens
    with pytest.raises(NotFound):
        service.create_key("NOBODY")
    with pytest.raises(NotFound):
        service.create_key("not an id!")
    made = [service.create_key("ALICE", label=f"key {n}") for n in range(MAX_LIVE_KEYS)]
    with pytest.raises(Conflict):
        service.create_key("ALICE")
    service.revoke_key(made[0].info.key_id)
    service.create_key("ALICE")  # a revoked key leaves room
    service.create_key("BOB")  # the limit is per mailbox
    assert len(service.list_keys("alice")) == MAX_LIVE_KEYS + 1
    assert [info.mailbox_id for info in service.list_keys()] == ["ALICE"] * (MAX_LIVE_KEYS + 1) + ["BOB"]
    assert service.list_keys("BARRY") == []
    assert len({info.key_id for info in service.list_keys()}) == MAX_LIVE_KEYS + 2


# -- the mailbox behind a login -------------------------------------------------------------------


def test_a_disabled_mailbox_refuses_its_logins_within_the_ttl(container, other, clock):
    service = container.api_tokens
    created = service.create_key("BOB")
    by_password = service.authorize_password("BOB", PASSWORD)
    by_key = service.authorize_key(created.info.key_id, created.secret)
    service.verify(by_password.access_token)
    service.verify(by_key.access_token)
    other.mailboxes.update("BOB", MailboxChanges(active=False))  # disabled by another process
    assert service.verify(by_key.access_token).mailbox_id == "BOB"
    clock.advance(TTL)
    refused(service.verify, by_password.access_token)
    refused(service.verify, by_key.access_token)
    refused(service.refresh, "BOB", by_password.refresh_token)
    refused(service.authorize_key, created.info.key_id, created.secret)


def test_a_removed_and_re_added_mailbox_does_not_inherit_old_logins_or_keys(container, clock):
    service = container.api_tokens
    created = service.create_key("BARRY")
    pair = service.authorize_password("BARRY", PASSWORD)
    barry = container.mailboxes.get("BARRY")
    container.mailboxes.remove("BARRY")
    clock.advance(TTL)
    refused(service.verify, pair.access_token)
    container.mailboxes.add(barry)
    refused(service.authorize_key, created.info.key_id, created.secret)
    refused(service.refresh, "BARRY", pair.refresh_token)
    assert service.verify(service.authorize_password("BARRY", PASSWORD).access_token).mailbox_id == "BARRY"


def test_revoke_logins_ends_every_login_of_a_mailbox(container):
    service = container.api_tokens
    first = service.authorize_password("ALICE", PASSWORD)
    second = service.authorize_password("ALICE", PASSWORD)
    bob = service.authorize_password("BOB", PASSWORD)
    assert service.revoke_logins("alice") == 2
    refused(service.verify, first.access_token)
    refused(service.refresh, "ALICE", second.refresh_token)
    assert service.verify(bob.access_token).mailbox_id == "BOB"


# -- maintenance and shared keys ------------------------------------------------------------------


def test_forget_expired_deletes_expired_logins_and_their_refresh_tokens(container, clock):
    service = container.api_tokens
    old = service.authorize_password("ALICE", PASSWORD)
    service.refresh("ALICE", old.refresh_token)
    clock.advance(timedelta(days=10))
    young = service.authorize_password("BOB", PASSWORD)
    assert service.forget_expired(clock.now() + timedelta(days=25)) == 1
    with container.db.read() as conn:
        logins = conn.execute(select(api_logins.c.mailbox_id)).scalars().all()
        tokens = conn.execute(select(refresh_tokens.c.token_hash)).scalars().all()
    assert logins == ["BOB"]
    assert tokens == [hashlib.sha256(young.refresh_token.encode()).hexdigest()]
    assert service.forget_expired(clock.now()) == 0


def test_server_keys_are_made_once_however_many_ask_at_once(container, other, clock):
    made: list[bytes] = []
    results: list[bytes] = []
    barrier = threading.Barrier(6)

    def make() -> bytes:
        made.append(bytes([len(made) + 1]) * 32)
        return made[-1]

    def ask(owner: Container) -> None:
        barrier.wait()
        with owner.db.write() as conn:
            results.append(server_keys.get_or_create(conn, "test-key", make, clock.now()))

    threads = [threading.Thread(target=ask, args=(owner,)) for owner in (container, other) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6
    assert len(set(results)) == 1
    assert results[0] in made
    with container.db.write() as conn:
        assert server_keys.get_or_create(conn, "test-key", lambda: b"never", clock.now()) == results[0]
        assert server_keys.get(conn, "absent") is None
        with pytest.raises(ValueError, match="must not be empty"):
            server_keys.get_or_create(conn, "empty", lambda: b"", clock.now())
        assert mailboxes.get(conn, "ALICE") is not None
