"""Handing freed heap memory back to the system now and then (glibc's ``malloc_trim``).

glibc keeps what a process frees for its next allocations, and returns to the system only the
free space at the top of each heap. A server's heap fills with small, short-lived blocks (rows,
request bodies, JSON), and the free space they leave between live blocks stays resident: after
40,000 messages through the JSON API a server's RSS had grown from 98 to 135 MiB, of which
``malloc_trim(0)`` (which also releases free pages inside a heap) gave back 20 MiB. So a server
process calls it every ``TRIM_EVERY`` seconds from a thread of its own (the call releases the
GIL; it takes about a millisecond for a heap of this size). Where malloc is not glibc's there
is nothing to call, and nothing runs.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

#: Seconds between two trims.
TRIM_EVERY = 10.0


def glibc_function(name: str) -> Callable[..., int] | None:
    """glibc's malloc function ``name`` (``malloc_trim``, ``mallopt``) in this process, or None
    where malloc is not glibc's."""
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    return function


class Trimmer:
    """A daemon thread calling ``malloc_trim(0)`` every ``every`` seconds until ``stop``."""

    def __init__(self, every: float = TRIM_EVERY) -> None:
        self._every = every
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.trims = 0  # how many times it has run (for tests)

    def start(self) -> bool:
        """Start trimming; False where there is no ``malloc_trim``."""
        trim = glibc_function("malloc_trim")
        if trim is None:
            return False

        def run() -> None:
            while not self._stopped.wait(self._every):
                trim(0)
                self.trims += 1

        self._thread = threading.Thread(target=run, name="mailroom-malloc-trim", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
