"""Who is calling: verifies an ``NHSMESH`` token against the mailbox it names."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import anyio.to_thread

from mailroom.auth import mesh_hmac
from mailroom.auth.mesh_hmac import MeshToken, shown
from mailroom.clock import Clock
from mailroom.domain.mailboxes import Mailbox
from mailroom.errors import AuthenticationFailed
from mailroom.services.mailbox_cache import MailboxCache
from mailroom.settings import Settings
from mailroom.storage.db import Database
from mailroom.storage.hot import Tx
from mailroom.storage.repos import tokens

T = TypeVar("T")

#: Every refused login, at WARNING, with its reason (docs/operations.md#diagnosing-login-failures).
log = logging.getLogger("mailroom.auth")


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
    token: MeshToken  # for the log line of a replay (which never shows its HMAC)
    peer: str | None  # the caller's address, for the same


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

    def authenticate(
        self, header: str | None, path_mailbox: str, peer: str | None = None
    ) -> MailboxPrincipal:
        """Checks in mesh-sandbox's order, then real MESH's clock window and single use.

        ``peer`` (the caller's address, if known) only goes into the log line of a refusal."""
        credentials = self.verify(header, path_mailbox, peer)
        if credentials.replay_key is not None:
            with self._db.hot_write() as tx:
                self._spend(tx, credentials)
        return credentials.principal

    async def authenticate_async(
        self, header: str | None, path_mailbox: str, peer: str | None = None
    ) -> MailboxPrincipal:
        """``authenticate`` from a coroutine: the token is spent by a group-commit job."""
        credentials = await self.verify_async(header, path_mailbox, peer)
        await self.spend_async(credentials)
        return credentials.principal

    async def spend_async(self, credentials: Credentials) -> None:
        """Spend a verified token on its own (AuthenticationFailed if it was spent before)."""
        if credentials.replay_key is not None:
            await self._db.write_async(partial(self._spend, credentials=credentials))

    async def verify_async(
        self, header: str | None, path_mailbox: str, peer: str | None = None
    ) -> Credentials:
        """``verify`` from a coroutine: on the event loop on SQLite (the mailbox is cached, the
        rest is arithmetic), in a worker thread elsewhere (a cache miss is a network round trip)."""
        if self._db.is_sqlite:
            return self.verify(header, path_mailbox, peer)
        return await anyio.to_thread.run_sync(self.verify, header, path_mailbox, peer)

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

    def verify(self, header: str | None, path_mailbox: str, peer: str | None = None) -> Credentials:
        """Every check but single use, in mesh-sandbox's order, then real MESH's clock window.

        A refusal is logged (``mailroom.auth``, WARNING) with its reason; the client gets only
        the MESH error. Nothing is logged, and no reason is worked out, when the token passes."""
        try:
            token = mesh_hmac.parse_token(header)
            if token.mailbox_id != path_mailbox.upper():
                raise AuthenticationFailed(mesh_hmac.MISMATCH_ERROR, reason=_mismatch(path_mailbox, token))
            mailbox = self._mailboxes.get(token.mailbox_id)
            if mailbox is None:
                raise AuthenticationFailed(
                    "No mailbox matched", event="SEND", code="EPL-151", reason=_unknown(token)
                )
            if not mesh_hmac.hash_matches(self._shared_key, token, mailbox.password):
                raise AuthenticationFailed(mesh_hmac.INVALID_ERROR, reason=_bad_signature(token))
            if not mailbox.active:
                raise AuthenticationFailed(mesh_hmac.INACTIVE_ERROR, reason=_inactive(token))
            now = self._clock.now()
            skew = self._settings.auth_clock_skew
            if self._settings.auth_check_clock and not mesh_hmac.within_window(token, now, skew):
                raise AuthenticationFailed(mesh_hmac.STALE_ERROR, reason=_outside_window(token, now, skew))
        except AuthenticationFailed as exc:
            _log_refusal(exc, path_mailbox, peer)
            raise
        expires = now + 2 * skew
        key = mesh_hmac.replay_key(token) if self._settings.auth_single_use_tokens else None
        return Credentials(MailboxPrincipal(mailbox), key, expires, token, peer)

    @staticmethod
    def _spend(tx: Tx, credentials: Credentials, *, alone: bool = True) -> None:
        assert credentials.replay_key is not None
        if not tokens.record_once(tx, credentials.replay_key, credentials.expires, alone=alone):
            failure = AuthenticationFailed(mesh_hmac.REPLAY_ERROR, reason=_replayed(credentials.token))
            _log_refusal(failure, credentials.token.mailbox_id, credentials.peer)
            raise failure


def _log_refusal(failure: AuthenticationFailed, path_mailbox: str, peer: str | None) -> None:
    """The log line of a refused login: never the token, its HMAC, a password or the key."""
    log.warning(
        "login refused for mailbox %s from %s: %s",
        shown(path_mailbox),
        peer or "an unknown address",
        failure.reason or failure.description,
    )


# -- reasons: worked out only for a refusal -------------------------------------------------------


def _mismatch(path_mailbox: str, token: MeshToken) -> str:
    return (
        f"mailbox mismatch: the path names {shown(path_mailbox)}, compared as "
        f"{shown(path_mailbox.upper())} (upper-cased); the token names {shown(token.mailbox_id)}, "
        "compared as sent (a token's mailbox id is not upper-cased: it must be in capitals)"
    )


def _unknown(token: MeshToken) -> str:
    return f"unknown mailbox: there is no mailbox {shown(token.mailbox_id)} on this server"


def _bad_signature(token: MeshToken) -> str:
    mailbox = shown(token.mailbox_id)
    return (
        f"bad signature: the token's HMAC does not match the password stored for {mailbox} with "
        f"this server's shared key: either the client has the wrong password for {mailbox}, or "
        "its shared key is not this server's"
    )


def _inactive(token: MeshToken) -> str:
    return f"mailbox disabled: mailbox {shown(token.mailbox_id)} is disabled (password and key were right)"


def _outside_window(token: MeshToken, now: datetime, skew: timedelta) -> str:
    problem = mesh_hmac.timestamp_problem(token)
    if problem is not None:
        return f"malformed header: {problem}"
    stamp = mesh_hmac.token_time(token)
    assert stamp is not None
    offset = round((now - stamp).total_seconds())
    side = "behind" if offset > 0 else "ahead of"
    return (
        f"clock skew: the token's timestamp {token.timestamp} is {abs(offset)} s {side} the server's "
        f"clock ({now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC); the allowed window is "
        f"±{round(skew.total_seconds())} s (auth_clock_skew)"
    )


def _replayed(token: MeshToken) -> str:
    return (
        f"replayed token: this token (nonce count {token.nonce_count}, timestamp "
        f"{shown(token.timestamp, 14)}) has been used before; a client must send a new nonce or "
        "a higher nonce count with every request"
    )


def _with_principal(tx: Tx, work: Callable[[Tx, MailboxPrincipal], T], principal: MailboxPrincipal) -> T:
    return work(tx, principal)
