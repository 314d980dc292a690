"""SQLite's writer lock across threads and processes (storage.write_lock).

Two ``WriteLock`` objects on one file stand for two processes: each opens the file itself, and
``flock`` locks belong to the open file, so they exclude each other as processes would.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from mailroom.storage.write_lock import WriteLock, lock_path_for


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path: Path):
    first, second = WriteLock(tmp_path / "db.lock"), WriteLock(tmp_path / "db.lock")
    assert first.acquire(blocking=False)
    assert not second.acquire(blocking=False)
    first.release()
    assert second.acquire(blocking=False)
    second.release()


def test_a_waiter_is_woken_when_the_holder_lets_go(tmp_path: Path):
    first, second = WriteLock(tmp_path / "db.lock"), WriteLock(tmp_path / "db.lock")
    order: list[str] = []
    first.acquire()

    def wait() -> None:
        with second:
            order.append("second")

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.05)
    order.append("first done")
    first.release()
    waiter.join(timeout=10)
    assert order == ["first done", "second"]


def test_threads_of_one_process_take_turns(tmp_path: Path):
    lock = WriteLock(tmp_path / "db.lock")
    assert lock.acquire(blocking=False)
    result: list[bool] = []
    refused = threading.Thread(target=lambda: result.append(lock.acquire(blocking=False)))
    refused.start()
    refused.join()
    assert result == [False]
    lock.release()


def test_another_process_holding_the_lock_excludes_this_one(tmp_path: Path):
    path = tmp_path / "db.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        lock = WriteLock(path)
        assert not lock.acquire(blocking=False)
    finally:
        holder.kill()
        holder.wait()
    assert lock.acquire(blocking=False)  # the holder died: the kernel let its lock go
    lock.release()


def test_the_lock_file_sits_beside_a_database_file_and_not_for_memory():
    assert lock_path_for("/data/mailroom.db") == Path("/data/mailroom.db.lock")
    assert lock_path_for(":memory:") is None
    assert lock_path_for(None) is None
    assert lock_path_for("") is None
