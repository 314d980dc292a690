"""Files and directories only Mailroom's own user can read: mode 0600 files, 0700 directories.

The data directory holds mailbox passwords, the shared key and message payloads. Everything
Mailroom creates there is created with these modes, passed to ``open``/``mkdir`` themselves, so
neither the process umask (which can only take bits away) nor the mode of a directory that
exists already (0755, say) makes a new file readable by others. What exists already keeps its
mode: Mailroom never changes an operator's choice.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents, each new one with mode 0700."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process may be making it too
            directory.mkdir(mode=DIR_MODE)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (never truncated)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
