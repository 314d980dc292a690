"""Run a command on a pseudo-terminal and replay its output on a small terminal emulator.

What a user sees is the final state of the screen, not the bytes written: a progress bar
redrawn with ``\\r`` and ``ESC[2K``/``ESC[1A`` can wipe lines that were printed meanwhile.
:class:`Screen` interprets what rich, click and the shell write (printable text with
wrapping, ``\\r``, ``\\n``, ``\\b``, ``\\t``, the CSI cursor moves ``A B C D G H``, erasing
with ``K`` and ``J``, scrolling at the bottom) and ignores colours and modes. ``lines()``
gives the lines scrolled off the top followed by the rows still on screen, as the user would
read them in their terminal.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CSI = re.compile(r"\x1b\[([?>=]?)([0-9;]*)([ -/]*)([@-~])")
OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
OTHER_ESCAPE = re.compile(r"\x1b[()][0-9A-Za-z]|\x1b[=>78c]")


@dataclass
class Screen:
    """A ``width`` x ``height`` terminal; rows scrolled off the top are kept in ``history``."""

    width: int = 80
    height: int = 24
    history: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    row: int = 0
    col: int = 0
    pending_wrap: bool = False

    def __post_init__(self) -> None:
        self.rows = [self._blank() for _ in range(self.height)]

    def _blank(self) -> list[str]:
        return [" "] * self.width

    def feed(self, text: str) -> None:
        position = 0
        while position < len(text):
            char = text[position]
            if char == "\x1b":
                position = self._escape(text, position)
                continue
            self._char(char)
            position += 1

    def _escape(self, text: str, position: int) -> int:
        for pattern in (CSI, OSC, OTHER_ESCAPE):
            match = pattern.match(text, position)
            if match:
                if pattern is CSI:
                    self._csi(match.group(1), match.group(2), match.group(4))
                return match.end()
        return position + 1  # a lone ESC: skip it

    def _char(self, char: str) -> None:
        if char == "\n":
            self._line_feed()
        elif char == "\r":
            self.col, self.pending_wrap = 0, False
        elif char == "\b":
            self.col, self.pending_wrap = max(0, self.col - 1), False
        elif char == "\t":
            self.col = min(self.width - 1, (self.col // 8 + 1) * 8)
        elif char >= " " and char != "\x7f":
            self._put(char)

    def _put(self, char: str) -> None:
        if self.pending_wrap:
            self.col, self.pending_wrap = 0, False
            self._line_feed()
        self.rows[self.row][self.col] = char
        if self.col == self.width - 1:
            self.pending_wrap = True
        else:
            self.col += 1

    def _line_feed(self) -> None:
        self.pending_wrap = False
        if self.row == self.height - 1:
            self.history.append("".join(self.rows.pop(0)).rstrip())
            self.rows.append(self._blank())
        else:
            self.row += 1

    def _csi(self, private: str, params: str, final: str) -> None:
        if private:
            return  # modes such as ESC[?25l (hide the cursor)
        numbers = [int(part) if part else 0 for part in params.split(";")] if params else []
        first = numbers[0] if numbers else 0
        count = max(1, first)
        self.pending_wrap = False
        if final == "A":
            self.row = max(0, self.row - count)
        elif final == "B":
            self.row = min(self.height - 1, self.row + count)
        elif final == "C":
            self.col = min(self.width - 1, self.col + count)
        elif final == "D":
            self.col = max(0, self.col - count)
        elif final == "G":
            self.col = min(self.width - 1, count - 1)
        elif final in "Hf":
            column = numbers[1] if len(numbers) > 1 else 1
            self.row = min(self.height - 1, max(1, first) - 1)
            self.col = min(self.width - 1, max(1, column) - 1)
        elif final == "K":
            self._erase_line(first)
        elif final == "J":
            self._erase_screen(first)
        # m (colours) and anything else change nothing we read

    def _erase_line(self, mode: int) -> None:
        line = self.rows[self.row]
        start, end = {0: (self.col, self.width), 1: (0, self.col + 1)}.get(mode, (0, self.width))
        for index in range(start, end):
            line[index] = " "

    def _erase_screen(self, mode: int) -> None:
        self._erase_line(mode)
        if mode == 0:
            targets = range(self.row + 1, self.height)
        elif mode == 1:
            targets = range(self.row)
        else:
            targets = range(self.height)
        for index in targets:
            self.rows[index] = self._blank()

    def lines(self) -> list[str]:
        """History, then the screen's rows, without trailing blank rows."""
        shown = [*self.history, *("".join(row).rstrip() for row in self.rows)]
        while shown and not shown[-1]:
            shown.pop()
        return shown

    def text(self) -> str:
        return "\n".join(self.lines())


@dataclass(frozen=True)
class Run:
    """A finished command: its exit status, the raw bytes and the screen they left."""

    returncode: int
    raw: bytes
    screen: Screen

    @property
    def lines(self) -> list[str]:
        return self.screen.lines()

    @property
    def text(self) -> str:
        return self.screen.text()


def terminal_env(base: Mapping[str, str], width: int, height: int) -> dict[str, str]:
    """``base`` as a terminal session sees it: no variables that switch rich's detection."""
    env = {
        name: value
        for name, value in base.items()
        if name not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")
    }
    env.update({"TERM": "xterm-256color", "COLUMNS": str(width), "LINES": str(height)})
    return env


def run_on_terminal(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None = None,
    width: int = 80,
    height: int = 24,
    timeout: float = 120.0,
) -> Run:
    """Run ``argv`` with stdin, stdout and stderr on one pseudo-terminal of this size."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=terminal_env(env, width, height),
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        os.close(slave)
    try:
        raw = _read_all(master, timeout)
        returncode = process.wait(timeout=timeout)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    screen = Screen(width, height)
    screen.feed(raw.decode("utf-8", errors="replace"))
    return Run(returncode, raw, screen)


def _read_all(master: int, timeout: float) -> bytes:
    """Everything written to the terminal until every writer has closed it."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the last writer is gone
            break
        if not data:
            break
        chunks.append(data)
    else:
        raise TimeoutError(f"the command still wrote to its terminal after {timeout}s")
    return b"".join(chunks)
