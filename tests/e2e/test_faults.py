"""SIGKILL at random moments of mixed traffic (sends, chunk uploads, downloads, acks), restart, check.

A few rounds of ``bench.faults`` (see its docstring for every check); run many on demand with
``python -m bench.faults --rounds 100``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import faults

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("seed", "workers"), [(20261122, 1), (20261123, 2)])
def test_random_kills_lose_and_duplicate_nothing(tmp_path: Path, seed: int, workers: int) -> None:
    """One process, and two workers sharing the database and payload store (all killed at once)."""
    summary = faults.run(tmp_path, rounds=3, seed=seed, workers=workers)
    assert summary["workers"] == workers
    assert summary["accepted"] > 0
    assert summary["acknowledged"] > 0
    interrupted = summary["interrupted_by_kill"]
    assert isinstance(interrupted, dict)
    assert sum(interrupted.values()) >= 3  # every round cut some operation in flight
