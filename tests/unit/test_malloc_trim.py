"""mailroom.malloc_trim: the trimming thread runs while started and stops when told."""

from __future__ import annotations

import threading
import time

import pytest

from mailroom.malloc_trim import Trimmer, glibc_function


@pytest.mark.skipif(glibc_function("malloc_trim") is None, reason="malloc is not glibc's")
def test_it_trims_while_started_and_stops_when_told() -> None:
    trimmer = Trimmer(every=0.01)
    assert trimmer.start() is True
    deadline = time.monotonic() + 10
    while trimmer.trims < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert trimmer.trims >= 3
    trimmer.stop()
    stopped_at = trimmer.trims
    time.sleep(0.1)
    assert trimmer.trims == stopped_at
    assert "mailroom-malloc-trim" not in {t.name for t in threading.enumerate()}
