"""Who is calling: verifies an ``NHSMESH`` token against the mailbox it names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

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


@dataclass(frozen=True)
class MailboxPrincipal:
    mailbox: Mailbox

    @property
    def mailbox_id(self) -> str:
        return self.mailbox.mailbox_id


class AuthenticationService:
    def __init__(
        self,
        settings: Settings,
        mailbox_cache: MailboxCache,
        token_db: Database,
        clock: Clock,
        shared_key: str,
    ) -> None:
        self._settings = settings
        self._mailboxes = mailbox_cache
        self._token_db = token_db
        self._clock = clock
        self._shared_key = shared_key

    def authenticate(self, header: str | None, path_mailbox: str) -> MailboxPrincipal:
        """Checks in mesh-sandbox's order, then real MESH's clock window and single use."""
        principal, replay_key, expires = self._verify(header, path_mailbox)
        if replay_key is not None:
            with self._token_db.hot_write() as tx:
                self._record_token(tx, replay_key, expires)
        return principal

    async def authenticate_async(self, header: str | None, path_mailbox: str) -> MailboxPrincipal:
        """``authenticate`` from a coroutine: the token is recorded by a group-commit job, and
        everything else (the HMAC, the cached mailbox) runs on the event loop.

        On a database that is not SQLite it runs in a worker thread (the mailbox lookup may
        need a network round trip)."""
        if not self._token_db.is_sqlite:
            return await anyio.to_thread.run_sync(self.authenticate, header, path_mailbox)
        principal, replay_key, expires = self._verify(header, path_mailbox)
        if replay_key is not None:
            await self._token_db.write_async(partial(self._record_token, key=replay_key, expires=expires))
        return principal

    def _verify(self, header: str | None, path_mailbox: str) -> tuple[MailboxPrincipal, str | None, datetime]:
        """Every check but single use; returns the principal and the token's replay key (None
        when tokens may be reused) with the time it may be forgotten."""
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
        return MailboxPrincipal(mailbox), key, expires

    @staticmethod
    def _record_token(tx: Tx, key: str, expires: datetime) -> None:
        if not tokens.record_once(tx, key, expires):
            raise AuthenticationFailed(mesh_hmac.REPLAY_ERROR)
