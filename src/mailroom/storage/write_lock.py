"""SQLite's one writer at a time, for the threads of this process and for other processes.

SQLite lets one connection write at a time. A writer that finds the database locked waits in
SQLite's busy handler, which sleeps (1, 2, 5, ... up to 100 ms) and tries again: the lock may
sit free for most of a sleep. Writers here queue instead: on a thread lock within the process,
then on an ``flock`` of a file beside the database across processes (``mailroom serve
--workers N``, or a CLI command while the server runs). The kernel wakes the next waiter the
moment the lock is released. Only writers that do not use it (another program, an older
Mailroom) still meet SQLite's busy handler.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType


class WriteLock:
    def __init__(self, path: Path | None) -> None:
        """``path``: the lock file (made if missing); None for a database no other process opens."""
        self._thread = threading.Lock()
        self._fd: int | None = None
        if path is not None:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def acquire(self, blocking: bool = True) -> bool:
        if not self._thread.acquire(blocking):
            return False
        if self._fd is None:
            return True
        # flock belongs to the open file, shared by this process's threads: the thread lock
        # above makes sure only one of them is here at a time.
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._thread.release()
            return False
        except BaseException:
            self._thread.release()
            raise
        return True

    def release(self) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def lock_path_for(database: str | None) -> Path | None:
    """The lock file of a SQLite database file: ``<database>.lock``; None for an in-memory one."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database + ".lock")
