"""Who is calling: verifies an ``NHSMESH`` token against the mailbox it names."""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.auth import mesh_hmac
from mailroom.clock import Clock
from mailroom.domain.mailboxes import Mailbox
from mailroom.errors import AuthenticationFailed
from mailroom.services.mailbox_cache import MailboxCache
from mailroom.settings import Settings
from mailroom.storage.db import Database
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
        if self._settings.auth_single_use_tokens:
            expires = now + 2 * self._settings.auth_clock_skew
            with self._token_db.hot_write() as tx:
                if not tokens.record_once(tx, mesh_hmac.replay_key(token), expires):
                    raise AuthenticationFailed(mesh_hmac.REPLAY_ERROR)
        return MailboxPrincipal(mailbox)
