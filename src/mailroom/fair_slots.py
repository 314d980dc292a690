"""Slots shared fairly between owners: at most ``per_owner`` each, waiters served in arrival order.

``FairSlots`` is what bounds the request bodies a server process stores at once
(``web.uploads``), the owner being the sending mailbox. A plain capacity limiter let one mailbox
whose uploads stall take every slot, and every other mailbox's upload waited with it. Here:

- one owner holds at most ``per_owner`` of the ``total`` slots;
- a free slot goes to the waiter that has waited longest among those whose owner is below its
  share, so no waiter is passed over by newer ones (nor by its own owner's newer ones), and an
  owner at its share holds up nobody behind it;
- a waiter that gives up (its task cancelled) leaves the queue; one cancelled just as it was
  given a slot hands the slot on.

Pure asyncio, used on one event loop; nothing here blocks. Taking a free slot costs a dict
lookup and two comparisons, with no future, task or lock.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque


class FairSlots:
    """``total`` slots, at most ``per_owner`` held by any one owner at once."""

    def __init__(self, total: int, per_owner: int) -> None:
        if total < 1 or per_owner < 1:
            raise ValueError("total and per_owner must be at least 1")
        self.total = total
        self.per_owner = min(per_owner, total)
        self._borrowed = 0
        self._held: dict[str, int] = {}
        # per owner, its waiters in arrival order: (arrival number, future set when served)
        self._waiters: dict[str, deque[tuple[int, asyncio.Future[None]]]] = {}
        self._arrivals = itertools.count()

    @property
    def borrowed(self) -> int:
        """Slots held now."""
        return self._borrowed

    @property
    def waiting(self) -> int:
        """Waiters in the queue (not yet served, not given up)."""
        return sum(1 for queue in self._waiters.values() for _, future in queue if not future.done())

    def held_by(self, owner: str) -> int:
        return self._held.get(owner, 0)

    def try_acquire(self, owner: str) -> bool:
        """Take a slot for ``owner`` if one is free to it now, without waiting.

        Whenever a slot is free, every waiter's owner is at its share (``_serve`` sees to that),
        so an owner below its share passes nobody by taking it."""
        held = self._held.get(owner, 0)
        if self._borrowed >= self.total or held >= self.per_owner:
            return False
        self._held[owner] = held + 1
        self._borrowed += 1
        return True

    async def acquire(self, owner: str) -> None:
        """Take a slot for ``owner``, waiting in turn if none is free to it. Cancelled while
        waiting, the waiter leaves the queue (and hands on a slot given to it meanwhile)."""
        if self.try_acquire(owner):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (next(self._arrivals), future)
        self._waiters.setdefault(owner, deque()).append(entry)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():  # served, but gone before it resumed
                self.release(owner)
            else:
                self._leave(owner, entry)
            raise

    def release(self, owner: str) -> None:
        """Give back a slot ``owner`` holds; the longest waiter that may have it is served."""
        held = self._held.get(owner, 0)
        if held <= 0:
            raise RuntimeError(f"release of a slot {owner!r} does not hold")
        if held == 1:
            del self._held[owner]
        else:
            self._held[owner] = held - 1
        self._borrowed -= 1
        self._serve()

    def _leave(self, owner: str, entry: tuple[int, asyncio.Future[None]]) -> None:
        queue = self._waiters.get(owner)
        if queue is not None and entry in queue:
            queue.remove(entry)
            if not queue:
                del self._waiters[owner]

    def _serve(self) -> None:
        """Give free slots to the longest waiters whose owners are below their share."""
        while self._borrowed < self.total and (owner := self._next_owner()) is not None:
            queue = self._waiters[owner]
            _, future = queue.popleft()
            if not queue:
                del self._waiters[owner]
            self._held[owner] = self._held.get(owner, 0) + 1
            self._borrowed += 1
            future.set_result(None)

    def _next_owner(self) -> str | None:
        """The owner below its share whose first waiter came first; waiters that gave up are
        dropped on the way (and owners left with none)."""
        chosen: str | None = None
        first = -1
        for owner, queue in list(self._waiters.items()):
            while queue and queue[0][1].done():  # given up (cancelled) meanwhile
                queue.popleft()
            if not queue:
                del self._waiters[owner]
            elif self._held.get(owner, 0) < self.per_owner and (chosen is None or queue[0][0] < first):
                chosen, first = owner, queue[0][0]
        return chosen
