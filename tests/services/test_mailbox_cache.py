"""The per-process mailbox cache: reads saved within the TTL, changes here seen at once,
changes made elsewhere (another process, the command line) seen once the TTL has passed."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from tests.conftest import PASSWORD, SHARED_KEY

from mailroom.auth.mesh_hmac import INACTIVE_ERROR, INVALID_ERROR, build_header
from mailroom.domain.mailboxes import Mailbox
from mailroom.domain.messages import ChunkRange, Metadata
from mailroom.errors import AuthenticationFailed, SendRejected
from mailroom.services.mailbox_cache import MailboxCache
from mailroom.services.mailboxes import MailboxChanges, MailboxService
from mailroom.services.sending import SendRequest
from mailroom.storage.repos import mailboxes

UNKNOWN = "No mailbox matched"


def authenticate(container, clock, mailbox_id, password=PASSWORD):
    header = build_header(mailbox_id, password, SHARED_KEY, nonce=str(uuid.uuid4()), at=clock.now())
    return container.auth.authenticate(header, mailbox_id)


def change_elsewhere(container, mailbox_id, **changes):
    """What another process does: write the row without going through this process's services."""
    with container.db.write() as conn:
        mailbox = mailboxes.get(conn, mailbox_id)
        assert mailbox is not None
        fields = {**mailbox.__dict__, **changes}
        mailboxes.upsert(conn, Mailbox(**fields), container.clock.now())


def test_disabled_elsewhere_is_refused_once_the_ttl_has_passed(container, clock):
    assert container.settings.mailbox_cache_ttl == timedelta(seconds=1)
    authenticate(container, clock, "BARRY")  # cached now
    change_elsewhere(container, "BARRY", active=False)

    authenticate(container, clock, "BARRY")  # within the TTL: the cached copy still answers
    clock.advance(timedelta(seconds=1))
    with pytest.raises(AuthenticationFailed) as refused:
        authenticate(container, clock, "BARRY")
    assert refused.value.description == INACTIVE_ERROR


def test_password_changed_elsewhere_applies_after_the_ttl(container, clock):
    authenticate(container, clock, "BARRY")
    change_elsewhere(container, "BARRY", password="new-password")
    clock.advance(timedelta(milliseconds=999))
    authenticate(container, clock, "BARRY", PASSWORD)
    clock.advance(timedelta(milliseconds=1))
    with pytest.raises(AuthenticationFailed) as refused:
        authenticate(container, clock, "BARRY", PASSWORD)
    assert refused.value.description == INVALID_ERROR
    authenticate(container, clock, "BARRY", "new-password")


def test_changes_through_this_process_apply_at_once(container, clock):
    authenticate(container, clock, "BARRY")
    container.mailboxes.set_active("BARRY", False)
    with pytest.raises(AuthenticationFailed):
        authenticate(container, clock, "BARRY")
    container.mailboxes.set_active("BARRY", True)
    authenticate(container, clock, "BARRY")
    container.mailboxes.add(Mailbox("BARRY", "TESTMB3", "changed", ods_code="X27"), replace=True)
    with pytest.raises(AuthenticationFailed):
        authenticate(container, clock, "BARRY")
    authenticate(container, clock, "BARRY", "changed")
    container.mailboxes.set_password("BARRY", "changed again")
    with pytest.raises(AuthenticationFailed):
        authenticate(container, clock, "BARRY", "changed")
    authenticate(container, clock, "BARRY", "changed again")
    container.mailboxes.update("BARRY", MailboxChanges(active=False))
    with pytest.raises(AuthenticationFailed) as refused:
        authenticate(container, clock, "BARRY", "changed again")
    assert refused.value.description == INACTIVE_ERROR
    container.mailboxes.update("BARRY", MailboxChanges(active=True))
    container.mailboxes.import_mailboxes([{"mailbox_id": "BARRY", "password": "again", "active": False}])
    with pytest.raises(AuthenticationFailed) as refused:
        authenticate(container, clock, "BARRY", "again")
    assert refused.value.description == INACTIVE_ERROR


def test_removed_here_is_refused_at_once(container, clock):
    authenticate(container, clock, "BARRY")
    container.mailboxes.remove("BARRY")
    with pytest.raises(AuthenticationFailed) as refused:
        authenticate(container, clock, "BARRY")
    assert refused.value.description == UNKNOWN


def elsewhere(container, clock):
    """Another process's mailbox service (``mailroom mailbox ...``): the same store, its own cache."""
    cache = MailboxCache(container.db, clock, container.settings.mailbox_cache_ttl)
    return MailboxService(container.db, container.payloads, clock, cache)


def test_removed_elsewhere_is_refused_once_the_ttl_has_passed(container, clock):
    authenticate(container, clock, "BARRY")
    elsewhere(container, clock).remove("BARRY")
    authenticate(container, clock, "BARRY")  # the cached copy, for at most the TTL
    clock.advance(container.settings.mailbox_cache_ttl)
    with pytest.raises(AuthenticationFailed) as refused:
        authenticate(container, clock, "BARRY")
    assert refused.value.description == UNKNOWN


def test_password_set_elsewhere_applies_once_the_ttl_has_passed(container, clock):
    authenticate(container, clock, "BARRY")
    elsewhere(container, clock).set_password("BARRY", "new-password")
    authenticate(container, clock, "BARRY", PASSWORD)
    clock.advance(container.settings.mailbox_cache_ttl)
    with pytest.raises(AuthenticationFailed):
        authenticate(container, clock, "BARRY", PASSWORD)
    authenticate(container, clock, "BARRY", "new-password")


def test_recipient_disabled_elsewhere_is_refused_after_the_ttl(container, clock):
    alice = authenticate(container, clock, "ALICE")
    request = SendRequest("BOB", "", ChunkRange(1, 1), Metadata(workflow_id="WF"))
    container.sending.plan_send(alice, request)
    change_elsewhere(container, "BOB", active=False)
    container.sending.plan_send(alice, request)  # cached
    clock.advance(timedelta(seconds=1))
    with pytest.raises(SendRejected) as refused:
        container.sending.plan_send(alice, request)
    assert refused.value.code == "12"


def test_unknown_mailboxes_are_not_cached(container, clock):
    cache = MailboxCache(container.db, clock, timedelta(seconds=60))
    assert cache.get("CAROL") is None
    change_elsewhere_new = Mailbox("CAROL", "", PASSWORD)
    with container.db.write() as conn:
        mailboxes.upsert(conn, change_elsewhere_new, clock.now())
    found = cache.get("CAROL")  # created elsewhere: usable at once
    assert found is not None
    assert found.mailbox_id == "CAROL"


def test_zero_ttl_reads_every_time(container, clock):
    cache = MailboxCache(container.db, clock, timedelta(0))
    first = cache.get("BOB")
    change_elsewhere(container, "BOB", active=False)
    second = cache.get("BOB")
    assert first is not None
    assert first.active
    assert second is not None
    assert not second.active


def test_a_read_racing_an_invalidation_does_not_store_the_old_row(container, clock):
    cache = MailboxCache(container.db, clock, timedelta(seconds=60))
    real_read = container.db.read

    def read_then_change():  # the row is read, then this process changes it before storing
        context = real_read()
        conn = context.__enter__()
        cache.invalidate()
        return _Wrapped(context, conn)

    container.db.read = read_then_change
    try:
        cache.get("BOB")
    finally:
        container.db.read = real_read
    change_elsewhere(container, "BOB", active=False)
    found = cache.get("BOB")
    assert found is not None
    assert not found.active


class _Wrapped:
    def __init__(self, context, conn):
        self._context, self._conn = context, conn

    def __enter__(self):
        return self._conn

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)
