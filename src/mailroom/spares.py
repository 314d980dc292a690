"""Large buffers kept for the next user instead of made afresh.

A fresh buffer of a few MiB costs the kernel a page fault for every 4 KiB on its first use
(measured with py-spy on the upload path: a quarter of a second of the event loop's time per
GiB). Upload pieces (``web.direct_body``) and payload write buffers
(``storage.payloads.filesystem``) are therefore taken from ``Spares`` and given back when done.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Spares(Generic[T]):
    """Up to ``keep`` unused ``make()`` results, for any thread to take and give back (``deque``
    appends and pops are atomic); one given back beyond ``keep`` goes to ``drop``."""

    def __init__(
        self, make: Callable[[], T], keep: int, drop: Callable[[T], object] = lambda _: None
    ) -> None:
        self._make = make
        self._keep = keep
        self._drop = drop
        self._free: deque[T] = deque()

    def take(self) -> T:
        try:
            return self._free.pop()
        except IndexError:
            return self._make()

    def give_back(self, item: T) -> None:
        if len(self._free) < self._keep:
            self._free.append(item)
        else:
            self._drop(item)

    def kept(self) -> int:
        """How many are kept unused now."""
        return len(self._free)

    def newest(self) -> T | None:
        """The one given back last (the next ``take`` returns it), if any."""
        return self._free[-1] if self._free else None
