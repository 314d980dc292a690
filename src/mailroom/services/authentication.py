"""Who is calling: verifies an ``NHSMESH`` token against the mailbox it names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TypeVar

import anyio.to_thread

from mailroom.auth import mesh_hmac
from mailroom.clock import Clock
from mailroom.domain.mailboxes import Mailbox
from mailroom.errors import AuthenticationFailed
from mailroom.services.mailbox_cache import MailboxCache
from mailroom.settings import Settings
from mailroom.storage.db import Database
from mailroom.storage.hot import Tx
from mailroom.storage.repos import tokens

T = TypeVar("T")


@dataclass(frozen=True)
class MailboxPrincipal:
    mailbox: Mailbox

    @property
    def mailbox_id(self) -> str:
        return self.mailbox.mailbox_id


@dataclass(frozen=True)
class Credentials:
    """A request's token, verified (HMAC, mailbox, clock) but not yet spent."""

    principal: MailboxPrincipal
    replay_key: str | None  # None when tokens may be reused (``auth_single_use_tokens`` off)
    expires: datetime  # when the spent token may be forgotten


class AuthenticationService:
    """Verifies ``NHSMESH`` tokens and spends them: a token authenticates one request only.

    A token is spent (recorded, ``storage.repos.tokens``) when it passes verification, even if
    the request then fails, so it can never authenticate another. ``write_as`` spends it in the
    same write job as the request's own writes, one group commit for both (a send, an
    acknowledgement); ``authenticate`` and ``authenticate_async`` spend it on its own.
    """

    def __init__(
        self,
        settings: Settings,
        mailbox_cache: MailboxCache,
        db: Database,
        clock: Clock,
        shared_key: str,
    ) -> None:
        self._settings = settings
        self._mailboxes = mailbox_cache
        self._db = db
        self._clock = clock
        self._shared_key = shared_key

    def authenticate(self, header: str | None, path_mailbox: str) -> MailboxPrincipal:
        """Checks in mesh-sandbox's order, then real MESH's clock window and single use."""
        credentials = self.verify(header, path_mailbox)
        if credentials.replay_key is not None:
            with self._db.hot_write() as tx:
                self._spend(tx, credentials)
        return credentials.principal

    async def authenticate_async(self, header: str | None, path_mailbox: str) -> MailboxPrincipal:
        """``authenticate`` from a coroutine: the token is spent by a group-commit job."""
        credentials = await self.verify_async(header, path_mailbox)
        await self.spend_async(credentials)
        return credentials.principal

    async def spend_async(self, credentials: Credentials) -> None:
        """Spend a verified token on its own (AuthenticationFailed if it was spent before)."""
        if credentials.replay_key is not None:
            await self._db.write_async(partial(self._spend, credentials=credentials))

    async def verify_async(self, header: str | None, path_mailbox: str) -> Credentials:
        """``verify`` from a coroutine: on the event loop on SQLite (the mailbox is cached, the
        rest is arithmetic), in a worker thread elsewhere (a cache miss is a network round trip)."""
        if self._db.is_sqlite:
            return self.verify(header, path_mailbox)
        return await anyio.to_thread.run_sync(self.verify, header, path_mailbox)

    async def write_as(self, credentials: Credentials, work: Callable[[Tx, MailboxPrincipal], T]) -> T:
        """Spend the token, then ``work(tx, principal)``, in one write job. A replayed token fails
        the job before ``work`` runs; the token stays spent if ``work`` raises."""
        principal = credentials.principal
        first = (
            None
            if credentials.replay_key is None
            else partial(self._spend, credentials=credentials, alone=False)
        )
        return await self._db.write_async(
            partial(_with_principal, work=work, principal=principal), first=first
        )

    def verify(self, header: str | None, path_mailbox: str) -> Credentials:
        """Every check but single use, in mesh-sandbox's order, then real MESH's clock window."""
        token = mesh_hmac.parse_token(header)
        if token.mailbox_id != path_mailbox.upper():
            raise AuthenticationFailed(mesh_hmac.MISMATCH_ERROR)
        mailbox = self._mailboxes.get(token.mailbox_id)
        if mailbox is None:
            raise AuthenticationFailed("No mailbox matched", event="SEND", code="EPL-151")
        if not mesh_hmac.hash_matches(self._shared_key, token, mailbox.password):
            raise AuthenticationFailed(mesh_hmac.INVALID_ERROR)
        if not mailbox.active:
            raise AuthenticationFailed(mesh_hmac.INACTIVE_ERROR)
        now = self._clock.now()
        if self._settings.auth_check_clock and not mesh_hmac.within_window(
            token, now, self._settings.auth_clock_skew
        ):
            raise AuthenticationFailed(mesh_hmac.STALE_ERROR)
        expires = now + 2 * self._settings.auth_clock_skew
        key = mesh_hmac.replay_key(token) if self._settings.auth_single_use_tokens else None
        return Credentials(MailboxPrincipal(mailbox), key, expires)

    @staticmethod
    def _spend(tx: Tx, credentials: Credentials, *, alone: bool = True) -> None:
        assert credentials.replay_key is not None
        if not tokens.record_once(tx, credentials.replay_key, credentials.expires, alone=alone):
            raise AuthenticationFailed(mesh_hmac.REPLAY_ERROR)


def _with_principal(tx: Tx, work: Callable[[Tx, MailboxPrincipal], T], principal: MailboxPrincipal) -> T:
    return work(tx, principal)
