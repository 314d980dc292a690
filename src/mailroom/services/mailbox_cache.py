"""Mailbox rows kept in memory for a moment: every authenticated request and every send reads one.

Each process keeps its own copy of a mailbox for ``Settings.mailbox_cache_ttl`` (1 s by default),
which saves the read transaction that authenticating a request (and looking up a send's recipient)
would otherwise cost. A change made through this process (``MailboxService``: add, import, enable,
disable) clears the copy at once; another process (a second server, or ``mailroom mailbox
disable`` from the command line) sees the change within the TTL. So disabling a mailbox or
changing its password takes effect everywhere within ``mailbox_cache_ttl``. Only mailboxes that
exist are kept, so the cache holds at most one entry per mailbox, and an unknown id is looked up
every time (a mailbox created elsewhere is usable at once).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from mailroom.clock import Clock
from mailroom.domain.mailboxes import Mailbox
from mailroom.storage.db import Database
from mailroom.storage.repos import mailboxes


class MailboxCache:
    def __init__(self, db: Database, clock: Clock, ttl: timedelta) -> None:
        self._db = db
        self._clock = clock
        self._ttl = ttl
        self._entries: dict[str, tuple[Mailbox, datetime]] = {}  # id → (mailbox, good until)
        # Bumped by every invalidation: a lookup that read the row before a change committed
        # must not store its (old) copy after the change cleared the cache.
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, mailbox_id: str) -> Mailbox | None:
        now = self._clock.now()
        entry = self._entries.get(mailbox_id)
        if entry is not None and now < entry[1]:
            return entry[0]
        generation = self._generation
        with self._db.read() as conn:
            mailbox = mailboxes.get(conn, mailbox_id)
        if mailbox is not None and self._ttl > timedelta(0):
            with self._lock:
                if generation == self._generation:
                    self._entries[mailbox_id] = (mailbox, now + self._ttl)
        return mailbox

    def invalidate(self) -> None:
        """Forget every copy (after this process changed mailboxes)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
