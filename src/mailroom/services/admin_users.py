"""Administrators of the administration API: argon2id password hashes, privileges, lock-out.

Mailbox (MESH) credentials are a different table and a different check: neither opens the other.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mailroom.clock import Clock
from mailroom.domain.admin import ADMIN_NAME, MIN_PASSWORD_LENGTH, AdminUser, Privilege
from mailroom.errors import Conflict, CredentialsRefused, NotFound, TooManyAttempts, ValidationFailed
from mailroom.storage.db import Database
from mailroom.storage.repos import admin as repo

#: A successful check is remembered this long (in memory, as a hash of hash and password), so a
#: client polling a job does not pay for argon2id on every request.
VERIFIED_FOR = 30.0


def check_name(name: str) -> str:
    if not ADMIN_NAME.match(name):
        raise ValidationFailed(
            "body", "userName", "an administrator name is 1-100 letters, digits or ._@-", value=name[:100]
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH or len(password) > 1024:
        raise ValidationFailed("body", "password", f"a password has {MIN_PASSWORD_LENGTH} to 1024 characters")
    return password


class FailureTracker:
    """Failed logins per client: after ``limit`` within ``window``, the client is refused without
    a check until ``window`` has passed since the last failure. In memory, per process."""

    def __init__(self, limit: int, window: timedelta, now: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window = window.total_seconds()
        self._now = now
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        if self._limit <= 0:
            return
        with self._lock:
            recent = self._recent(client)
            if len(recent) >= self._limit:
                raise TooManyAttempts(max(1, int(recent[-1] + self._window - self._now()) + 1))

    def failed(self, client: str) -> None:
        with self._lock:
            recent = self._recent(client)
            recent.append(self._now())
            while len(recent) > max(self._limit, 1):
                recent.popleft()
            if len(self._failures) > 100_000:  # bound the table under a spray of addresses
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        recent = self._failures.setdefault(client, deque())
        cutoff = self._now() - self._window
        while recent and recent[0] < cutoff:
            recent.popleft()
        return recent


class AdminUserService:
    def __init__(self, db: Database, clock: Clock, failures: FailureTracker) -> None:
        self._db = db
        self._clock = clock
        self._hasher = PasswordHasher()  # argon2id, the library's recommended parameters
        self._dummy = self._hasher.hash("not a password: equalises the time of unknown names")
        self._failures = failures
        self._verified: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, password: str, privilege: Privilege = Privilege.ADMIN) -> AdminUser:
        now = self._clock.now()
        user = AdminUser(check_name(name), privilege, now, now)
        password_hash = self._hasher.hash(check_password(password))
        with self._db.write() as conn:
            if repo.get_user(conn, name) is not None:
                raise Conflict(f"administrator {name!r} exists already")
            repo.insert_user(conn, user, password_hash)
        return user

    def all(self) -> list[AdminUser]:
        with self._db.read() as conn:
            return repo.users(conn)

    def get(self, name: str) -> AdminUser:
        with self._db.read() as conn:
            found = repo.get_user(conn, name)
        if found is None:
            raise NotFound(f"no administrator {name!r}")
        return found[0]

    def set_password(self, name: str, password: str) -> None:
        password_hash = self._hasher.hash(check_password(password))
        with self._db.write() as conn:
            if not repo.set_password_hash(conn, name, password_hash, self._clock.now()):
                raise NotFound(f"no administrator {name!r}")
        self._forget_verified()

    def set_privilege(self, name: str, privilege: Privilege) -> None:
        with self._db.write() as conn:
            found = repo.get_user(conn, name)
            if found is None:
                raise NotFound(f"no administrator {name!r}")
            if found[0].privilege is Privilege.ADMIN and privilege is not Privilege.ADMIN:
                self._keep_one_admin(conn)
            repo.set_privilege(conn, name, privilege)
        self._forget_verified()

    def remove(self, name: str) -> None:
        with self._db.write() as conn:
            found = repo.get_user(conn, name)
            if found is None:
                raise NotFound(f"no administrator {name!r}")
            if found[0].privilege is Privilege.ADMIN:
                self._keep_one_admin(conn)
            repo.delete_user(conn, name)
        self._forget_verified()

    @staticmethod
    def _keep_one_admin(conn: object) -> None:
        if repo.count_admins(conn) <= 1:  # type: ignore[arg-type]
            raise Conflict("this is the last full administrator: add another first")

    def authenticate(self, name: str, password: str, client: str) -> AdminUser:
        """The administrator ``name`` if ``password`` is theirs; ``CredentialsRefused`` otherwise
        (the same error, in about the same time, for an unknown name), ``TooManyAttempts`` while
        ``client`` is locked out."""
        self._failures.check(client)
        with self._db.read() as conn:
            found = repo.get_user(conn, name)
        stored = found[1] if found is not None else self._dummy
        if found is not None and self._recently_verified(stored, password):
            return found[0]
        try:
            self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            self._failures.failed(client)
            raise CredentialsRefused() from None
        if found is None:
            self._failures.failed(client)
            raise CredentialsRefused()
        self._failures.succeeded(client)
        self._remember_verified(stored, password)
        return found[0]

    def _key(self, stored: str, password: str) -> bytes:
        return hashlib.sha256(f"{stored}\0{password}".encode()).digest()

    def _recently_verified(self, stored: str, password: str) -> bool:
        with self._lock:
            until = self._verified.get(self._key(stored, password))
        return until is not None and until > time.monotonic()

    def _remember_verified(self, stored: str, password: str) -> None:
        with self._lock:
            if len(self._verified) > 1000:
                self._verified.clear()
            self._verified[self._key(stored, password)] = time.monotonic() + VERIFIED_FOR

    def _forget_verified(self) -> None:
        with self._lock:
            self._verified.clear()
