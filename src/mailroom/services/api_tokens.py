"""Tokens of the JSON messaging API: logins by mailbox password or API key, short-lived signed
access tokens, rotating refresh tokens, API keys.

The JSON faces depend on exactly these names: ``ApiPrincipal``, ``TokenPair``, ``ApiKeyInfo``,
``NewApiKey`` and ``ApiTokenService`` (its docstring describes tokens, chains and revocation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
from sqlalchemy import Connection

from mailroom.clock import Clock
from mailroom.domain.mailboxes import normalise_mailbox_id
from mailroom.errors import AuthenticationFailed, Conflict, NotFound, ValidationFailed
from mailroom.services.admin_users import FailureTracker
from mailroom.settings import Settings
from mailroom.storage.db import Database
from mailroom.storage.repos import api_tokens as repo
from mailroom.storage.repos import server_keys


@dataclass(frozen=True)
class ApiPrincipal:
    """Who a request's access token speaks for."""

    mailbox_id: str
    read_only: bool
    login_id: str


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token is valid for


@dataclass(frozen=True)
class ApiKeyInfo:
    key_id: str
    mailbox_id: str
    read_only: bool
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewApiKey:
    info: ApiKeyInfo
    secret: str  # shown once, never stored


# -- the service ----------------------------------------------------------------------------------

#: The ``server_keys`` row every process signs access tokens with.
SIGNING_KEY_NAME = "api-token-signing"
TOKEN_VERSION = "v1"
#: Live (unrevoked) API keys a mailbox may hold at once, as MFT Gateway allows.
MAX_LIVE_KEYS = 10
#: Longest access token, refresh token, key id, secret or password looked at; longer is refused
#: before any work (a client-controlled size).
MAX_TOKEN_CHARS = 2048
MAX_SECRET_CHARS = 1024
MAX_LABEL_CHARS = 200
#: Logins whose revocation state a process remembers at most; past it the memory starts afresh.
MAX_CACHED_LOGINS = 100_000

_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    if not _B64URL.match(text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None


@dataclass(frozen=True)
class _Claims:
    mailbox_id: str
    login_id: str
    read_only: bool
    expires: int  # seconds since the epoch


def _claims_from(payload: bytes) -> _Claims | None:
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    mailbox, login, read_only, expires = data.get("m"), data.get("l"), data.get("r"), data.get("e")
    if not (isinstance(mailbox, str) and isinstance(login, str) and isinstance(read_only, bool)):
        return None
    if not isinstance(expires, int) or isinstance(expires, bool):
        return None
    return _Claims(mailbox, login, read_only, expires)


def _info(row: repo.KeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(
        row.key_id, row.mailbox_id, row.read_only, row.label, row.created_at, row.last_used_at, row.revoked_at
    )


class ApiTokenService:
    """Logins to the JSON messaging API and the tokens they hand out.

    A login (``authorize_password``, ``authorize_key``) starts a *chain*: one ``api_logins``
    row, valid for ``api_login_lifetime``, and a pair of tokens:

    - an **access token**, ``v1.<base64url payload>.<base64url HMAC-SHA256>``, self-contained
      (mailbox, login id, read-only flag, expiry) and signed with the ``api-token-signing``
      server key that every process shares (``storage.repos.server_keys``), valid for
      ``api_token_lifetime`` and never past its login. ``verify`` needs no database query while
      this process's memory of the login's revocation state is younger than
      ``api_revocation_ttl``, so a revoked login stops working everywhere within that time.
    - a **refresh token**, 256 random bits stored only as a SHA-256 digest. It rotates: each
      ``refresh`` spends it and issues a new pair in the same chain; presenting a spent one
      again (a copy in someone else's hands, or a replay) revokes the whole chain.

    Every refusal of a credential is ``AuthenticationFailed`` with the same description (its
    ``reason`` is for the server's log); a ``client`` (an address, given by the face) that fails
    too often is refused with ``TooManyAttempts`` without a check.
    """

    def __init__(self, settings: Settings, db: Database, clock: Clock, failures: FailureTracker) -> None:
        self._db = db
        self._clock = clock
        self._failures = failures
        self._token_lifetime = settings.api_token_lifetime
        self._login_lifetime = settings.api_login_lifetime
        self._revocation_ttl = settings.api_revocation_ttl
        self._dummy = secrets.token_hex(32)  # compared against when a mailbox or key is unknown
        self._signing_key: bytes | None = None
        self._key_lock = threading.Lock()
        self._alive: dict[str, tuple[bool, datetime]] = {}  # login id → (alive, good until)
        self._generation = 0  # bumped by this process's revocations (see _remember)
        self._lock = threading.Lock()

    # -- logging in ------------------------------------------------------------------------------

    def authorize_password(self, mailbox_id: str, password: str, *, client: str | None = None) -> TokenPair:
        """Log in as a mailbox with its MESH password (mailbox ids are case-insensitive).

        MESH keeps mailbox passwords in plain text (its HMAC needs them), so they are compared
        as SHA-256 digests with ``hmac.compare_digest`` (no length or prefix leaks). An unknown
        or inactive mailbox is refused exactly as a wrong password is. Password logins are never
        read-only.
        """
        self._failures_check(client)
        key = self._key()
        mailbox = normalise_mailbox_id(mailbox_id) if len(mailbox_id) <= 100 else None
        if not password or len(password) > MAX_SECRET_CHARS:
            raise self._refused(client, "empty or over-long password")
        state = None
        if mailbox is not None:
            with self._db.read() as conn:
                state = repo.mailbox_state(conn, mailbox)
        stored = state.password if state is not None else self._dummy
        matches = hmac.compare_digest(_digest(stored), _digest(password))
        if state is None:
            raise self._refused(client, f"password login to unknown mailbox {mailbox or '(malformed id)'}")
        if not matches:
            raise self._refused(client, f"wrong password for mailbox {state.mailbox_id}")
        if not state.active:
            raise self._refused(client, f"password login to inactive mailbox {state.mailbox_id}")
        self._failures_succeeded(client)
        with self._db.write() as conn:
            return self._new_login(conn, key, state.mailbox_id, None, read_only=False)

    def authorize_key(self, key_id: str, secret: str, *, client: str | None = None) -> TokenPair:
        """Log in with an API key (``tokenID``, ``tokenSecret``): the login is read-only if the key
        is. Refused if the key is unknown or revoked, the secret wrong, or its mailbox gone,
        inactive or made again since the key was."""
        self._failures_check(client)
        signing_key = self._key()
        if len(key_id) > MAX_TOKEN_CHARS or not secret or len(secret) > MAX_SECRET_CHARS:
            raise self._refused(client, "malformed key id or secret")
        with self._db.read() as conn:
            row = repo.get_key(conn, key_id)
            state = repo.mailbox_state(conn, row.mailbox_id) if row is not None else None
        matches = hmac.compare_digest(_digest(secret), row.secret_hash if row is not None else self._dummy)
        if row is None:
            raise self._refused(client, "unknown API key")
        if not matches:
            raise self._refused(client, f"wrong secret for API key {row.key_id}")
        if row.revoked_at is not None:
            raise self._refused(client, f"revoked API key {row.key_id}")
        if state is None or not state.active or state.created_at > row.created_at:
            raise self._refused(
                client, f"API key {row.key_id} of a missing or inactive mailbox {row.mailbox_id}"
            )
        self._failures_succeeded(client)
        with self._db.write() as conn:
            repo.key_used(conn, row.key_id, self._clock.now())
            return self._new_login(conn, signing_key, row.mailbox_id, row.key_id, read_only=row.read_only)

    def refresh(self, username: str, refresh_token: str) -> TokenPair:
        """Spend ``refresh_token`` for a new pair in the same login chain.

        ``username`` must name the login: its mailbox id (any case), or, for a login made with
        an API key, that key's id (exactly) as well. A wrong username is refused and changes
        nothing (the token stays unspent). A token spent before revokes the whole chain (every
        access token of it stops working within ``api_revocation_ttl``) and is refused; so is
        one whose login is revoked, past ``api_login_lifetime``, or whose mailbox or key no
        longer allows it. Two concurrent uses of one token: one wins, the other is a reuse.
        """
        key = self._key()
        if not refresh_token or len(refresh_token) > MAX_TOKEN_CHARS or len(username) > MAX_TOKEN_CHARS:
            raise AuthenticationFailed(reason="malformed refresh request")
        token_hash = _digest(refresh_token)
        with self._db.write() as conn:
            outcome = self._rotate(conn, key, username, token_hash)
        if isinstance(outcome, AuthenticationFailed):
            raise outcome  # after the commit: a reuse's revocation is kept
        return outcome

    def _rotate(
        self, conn: Connection, key: bytes, username: str, token_hash: str
    ) -> TokenPair | AuthenticationFailed:
        now = self._clock.now()
        found = repo.refresh_token_login(conn, token_hash)
        if found is None:
            return AuthenticationFailed(reason="unknown refresh token")
        login, spent_at = found
        if username.strip().upper() != login.mailbox_id and username != login.key_id:
            return AuthenticationFailed(reason=f"refresh of login {login.login_id} under another username")
        if spent_at is not None or not repo.spend_refresh_token(conn, token_hash, now):
            repo.revoke_login(conn, login.login_id, now, "spent refresh token reused")
            self._remember(login.login_id, False)
            return AuthenticationFailed(reason=f"spent refresh token reused: login {login.login_id} revoked")
        if not repo.login_alive(conn, login.login_id, now):
            return AuthenticationFailed(reason=f"refresh of revoked or expired login {login.login_id}")
        return self._issue(conn, key, login, now)

    def _new_login(
        self, conn: Connection, key: bytes, mailbox_id: str, key_id: str | None, *, read_only: bool
    ) -> TokenPair:
        now = self._clock.now()
        login = repo.LoginRow(
            secrets.token_hex(16), mailbox_id, key_id, read_only, now, now + self._login_lifetime, None
        )
        repo.insert_login(conn, login)
        return self._issue(conn, key, login, now)

    def _issue(self, conn: Connection, key: bytes, login: repo.LoginRow, now: datetime) -> TokenPair:
        refresh_token = secrets.token_urlsafe(32)
        repo.insert_refresh_token(conn, _digest(refresh_token), login.login_id, now)
        expires = int(min(now + self._token_lifetime, login.expires_at).timestamp())
        claims = {"m": login.mailbox_id, "l": login.login_id, "r": login.read_only, "e": expires}
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        signed = f"{TOKEN_VERSION}.{payload}"
        mac = _b64(hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest())
        return TokenPair(f"{signed}.{mac}", refresh_token, max(0, expires - int(now.timestamp())))

    # -- checking access tokens ------------------------------------------------------------------

    def verify(self, access_token: str) -> ApiPrincipal:
        """Who ``access_token`` speaks for; ``AuthenticationFailed`` if it is malformed, altered,
        signed with another key, expired, or its login is revoked (as this process last read it,
        at most ``api_revocation_ttl`` ago)."""
        claims = self._unexpired_claims(access_token)
        alive = self._cached_alive(claims.login_id)
        return self._principal(claims, self._read_alive(claims.login_id) if alive is None else alive)

    async def verify_async(self, access_token: str) -> ApiPrincipal:
        """``verify`` from a coroutine: all on the event loop while the login's state is cached
        (signature and expiry are arithmetic) and on SQLite (a read of one row); a read from
        PostgreSQL, a network round trip, in a worker thread."""
        claims = self._unexpired_claims(access_token)
        alive = self._cached_alive(claims.login_id)
        if alive is None:
            if self._db.is_sqlite:
                alive = self._read_alive(claims.login_id)
            else:
                alive = await anyio.to_thread.run_sync(self._read_alive, claims.login_id)
        return self._principal(claims, alive)

    def _unexpired_claims(self, access_token: str) -> _Claims:
        claims = self._claims(access_token)
        if claims.expires <= self._clock.now().timestamp():
            raise AuthenticationFailed(reason=f"expired access token of login {claims.login_id}")
        return claims

    @staticmethod
    def _principal(claims: _Claims, alive: bool) -> ApiPrincipal:
        if not alive:
            raise AuthenticationFailed(reason=f"access token of revoked login {claims.login_id}")
        return ApiPrincipal(claims.mailbox_id, claims.read_only, claims.login_id)

    def _claims(self, token: str) -> _Claims:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise AuthenticationFailed(reason="malformed access token")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_VERSION:
            raise AuthenticationFailed(reason="not a v1 access token")
        signed = f"{parts[0]}.{parts[1]}".encode("ascii")
        expected = _b64(hmac.new(self._key(), signed, hashlib.sha256).digest())
        if not hmac.compare_digest(parts[2].encode("ascii"), expected.encode("ascii")):
            raise AuthenticationFailed(reason="access token with a wrong signature")
        payload = _unb64(parts[1])
        claims = _claims_from(payload) if payload is not None else None
        if claims is None:  # signed by us yet unreadable: cannot happen unless the key leaked
            raise AuthenticationFailed(reason="signed access token with an unreadable payload")
        return claims

    def _cached_alive(self, login_id: str) -> bool | None:
        """Whether the login is alive as this process last read it, None if not read lately."""
        entry = self._alive.get(login_id)
        if entry is not None and self._clock.now() < entry[1]:
            return entry[0]
        return None

    def _read_alive(self, login_id: str) -> bool:
        """Whether the login is alive, read from the database (and cached for the TTL)."""
        now = self._clock.now()
        generation = self._generation
        with self._db.read() as conn:
            alive = repo.login_alive(conn, login_id, now)
        if self._revocation_ttl > timedelta(0):
            with self._lock:
                if generation == self._generation:  # no revocation here since the read
                    if len(self._alive) >= MAX_CACHED_LOGINS:
                        self._alive.clear()
                    self._alive[login_id] = (alive, now + self._revocation_ttl)
        return alive

    def _remember(self, login_id: str | None, alive: bool) -> None:
        """After a revocation made here: this process knows at once (``None``: forget every
        login, since which ones changed is not known)."""
        with self._lock:
            self._generation += 1
            if login_id is None:
                self._alive.clear()
            else:
                self._alive[login_id] = (alive, self._clock.now() + self._revocation_ttl)

    # -- API keys ----------------------------------------------------------------------------------

    def create_key(self, mailbox_id: str, *, read_only: bool = False, label: str = "") -> NewApiKey:
        """A new API key for a mailbox (``NotFound`` if there is none; ``Conflict`` if it holds
        ``MAX_LIVE_KEYS`` unrevoked keys). The secret is in the answer only: what is stored is
        its SHA-256 digest."""
        mailbox = normalise_mailbox_id(mailbox_id) if len(mailbox_id) <= 100 else None
        label = label.strip()
        if len(label) > MAX_LABEL_CHARS or not label.isprintable():
            raise ValidationFailed(
                "body", "label", f"a label has at most {MAX_LABEL_CHARS} printable characters"
            )
        secret = secrets.token_urlsafe(32)
        now = self._clock.now()
        row = repo.KeyRow(
            f"mrk_{secrets.token_hex(16)}", mailbox or "", _digest(secret), read_only, label, now, None, None
        )
        with self._db.write() as conn:
            if mailbox is None or repo.mailbox_state(conn, mailbox, lock=True) is None:
                raise NotFound(f"mailbox {mailbox or mailbox_id[:100]} does not exist")
            if repo.count_live_keys(conn, mailbox) >= MAX_LIVE_KEYS:
                raise Conflict(f"mailbox {mailbox} has {MAX_LIVE_KEYS} API keys already: revoke one first")
            repo.insert_key(conn, row)
        return NewApiKey(_info(row), secret)

    def list_keys(self, mailbox_id: str | None = None) -> list[ApiKeyInfo]:
        """Every API key, revoked ones too (by mailbox, then age), or only a mailbox's."""
        mailbox = None
        if mailbox_id is not None:
            mailbox = normalise_mailbox_id(mailbox_id) if len(mailbox_id) <= 100 else None
            if mailbox is None:
                return []
        with self._db.read() as conn:
            return [_info(row) for row in repo.keys(conn, mailbox)]

    def revoke_key(self, key_id: str) -> None:
        """Revoke an API key and every login made with it (``NotFound`` if unknown; revoking a
        revoked key changes nothing). Its access tokens stop working here at once and in other
        processes within ``api_revocation_ttl``."""
        with self._db.write() as conn:
            if len(key_id) > MAX_TOKEN_CHARS or not repo.revoke_key(conn, key_id, self._clock.now()):
                raise NotFound(f"no API key {key_id[:100]!r}")
        self._remember(None, False)

    def revoke_logins(
        self, mailbox_id: str, reason: str = "revoked by an administrator", *, key_logins: bool = True
    ) -> int:
        """Revoke every live login of a mailbox (its password logins, and unless ``key_logins``
        is false its API-key logins); how many. For a compromised mailbox: a disabled mailbox's
        logins are refused only while it stays disabled. Their access tokens stop working here at
        once and in other processes within ``api_revocation_ttl``; their refresh tokens at once."""
        mailbox = normalise_mailbox_id(mailbox_id) if len(mailbox_id) <= 100 else None
        if mailbox is None:
            return 0
        with self._db.write() as conn:
            revoked = self.end_logins(conn, mailbox, reason, key_logins=key_logins)
        self.forget_revocations()
        return revoked

    def end_logins(
        self, conn: Connection, mailbox_id: str, reason: str, *, key_logins: bool = True, keys: bool = False
    ) -> int:
        """``revoke_logins`` inside the caller's write transaction (``mailbox_id`` as stored), so
        a credential change and the end of the logins it ends commit together; with ``keys``
        the mailbox's API keys are revoked too. How many logins. The caller calls
        ``forget_revocations`` once the transaction has committed."""
        now = self._clock.now()
        if keys:
            repo.revoke_mailbox_keys(conn, mailbox_id, now)
        return repo.revoke_mailbox_logins(conn, mailbox_id, now, reason, key_logins=key_logins)

    def forget_revocations(self) -> None:
        """After revocations committed by ``end_logins``: this process forgets what it read of
        every login's state, so it refuses their access tokens at once (other processes within
        ``api_revocation_ttl``)."""
        self._remember(None, False)

    # -- maintenance -------------------------------------------------------------------------------

    def forget_expired(self, now: datetime) -> int:
        """Delete the logins past their chain's lifetime, and their refresh tokens; how many logins."""
        with self._db.write() as conn:
            return repo.forget_expired(conn, now)

    # -- helpers -----------------------------------------------------------------------------------

    def _key(self) -> bytes:
        """The signing key every process shares, read (or made) once per process."""
        key = self._signing_key
        if key is not None:
            return key
        with self._key_lock:
            if self._signing_key is None:
                with self._db.read() as conn:
                    found = server_keys.get(conn, SIGNING_KEY_NAME)
                if found is None:
                    with self._db.write() as conn:
                        found = server_keys.get_or_create(
                            conn, SIGNING_KEY_NAME, lambda: secrets.token_bytes(32), self._clock.now()
                        )
                self._signing_key = found
            return self._signing_key

    def _failures_check(self, client: str | None) -> None:
        if client is not None:
            self._failures.check(client)

    def _failures_succeeded(self, client: str | None) -> None:
        if client is not None:
            self._failures.succeeded(client)

    def _refused(self, client: str | None, reason: str) -> AuthenticationFailed:
        if client is not None:
            self._failures.failed(client)
        return AuthenticationFailed(reason=reason)
