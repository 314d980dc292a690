"""The SQLite group-commit writer (storage.group_commit) through Database.write_async."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import threading
from functools import partial
from pathlib import Path

import pytest

from mailroom.storage import write_lock
from mailroom.storage.db import Database, create_database
from mailroom.storage.group_commit import CommitThread, GroupWriter
from mailroom.storage.hot import Tx
from mailroom.storage.write_lock import WriteLock, lock_path_for


@pytest.fixture
def db(tmp_path: Path):
    database = create_database(f"sqlite:///{tmp_path / 'group.db'}")
    with database.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
        conn.exec_driver_sql("CREATE TABLE parents (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE children (id INTEGER PRIMARY KEY, "
            "parent INTEGER REFERENCES parents(id) DEFERRABLE INITIALLY DEFERRED)"
        )
    yield database
    database.dispose()


def names(path: Path) -> list[str]:
    """What another connection (another process, say) sees committed."""
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM items ORDER BY name")]


def insert(name: str):
    def work(tx: Tx) -> str:
        tx.dbapi.execute("INSERT INTO items (name) VALUES (?)", (name,))
        return name

    return work


def fail_after_insert(name: str):
    def work(tx: Tx) -> None:
        tx.dbapi.execute("INSERT INTO items (name) VALUES (?)", (name,))
        raise LookupError(name)

    return work


def db_path(db: Database) -> Path:
    return Path(str(db.engine.url.database))


def test_every_job_is_committed_when_its_caller_hears_of_it(db):
    async def main() -> None:
        results = await asyncio.gather(*(db.write_async(insert(f"n{i:03}")) for i in range(300)))
        assert results == [f"n{i:03}" for i in range(300)]
        assert len(names(db_path(db))) == 300  # committed, visible to another connection

    asyncio.run(main())


def test_a_failing_job_is_rolled_back_alone(db):
    async def main() -> None:
        # submitted together, so they share a batch (the flush runs once the loop is free)
        outcomes = await asyncio.gather(
            db.write_async(insert("a")),
            db.write_async(fail_after_insert("b")),
            db.write_async(insert("c")),
            db.write_async(insert("a")),  # a duplicate: IntegrityError, for this job only
            return_exceptions=True,
        )
        assert outcomes[0] == "a"
        assert isinstance(outcomes[1], LookupError)
        assert outcomes[2] == "c"
        assert isinstance(outcomes[3], sqlite3.IntegrityError)

    asyncio.run(main())
    assert names(db_path(db)) == ["a", "c"]


def test_a_failed_commit_fails_every_job_of_its_batch(db):
    def orphan(tx: Tx) -> None:  # a deferred foreign key: fails at COMMIT, not before
        tx.dbapi.execute("INSERT INTO children (parent) VALUES (42)")

    async def main() -> list[object]:
        return await asyncio.gather(
            db.write_async(insert("x")), db.write_async(orphan), return_exceptions=True
        )

    outcomes = asyncio.run(main())
    assert all(isinstance(outcome, sqlite3.IntegrityError) for outcome in outcomes), outcomes
    assert names(db_path(db)) == []


def test_first_is_kept_when_work_fails(db):
    async def main() -> None:
        with pytest.raises(LookupError):
            await db.write_async(fail_after_insert("work"), first=insert("first"))
        with pytest.raises(sqlite3.IntegrityError):  # first fails: work never runs
            await db.write_async(insert("never"), first=insert("first"))

    asyncio.run(main())
    assert names(db_path(db)) == ["first"]


def test_the_loop_does_not_wait_while_a_thread_holds_the_write_lock(db):
    """A write transaction in a thread (maintenance, an upload) holds the lock; the commit
    thread waits for it and the loop goes on serving (else this test would hang: the thread
    lets go only after the loop has run something else)."""
    loop_ran = threading.Event()
    holding = threading.Event()

    def hold() -> None:
        with db.write() as conn:
            conn.exec_driver_sql("INSERT INTO items (name) VALUES ('thread')")
            holding.set()
            assert loop_ran.wait(timeout=30)

    async def main() -> None:
        thread = threading.Thread(target=hold)
        thread.start()
        await asyncio.to_thread(holding.wait)
        job = asyncio.ensure_future(db.write_async(insert("loop")))
        await asyncio.sleep(0)  # the flush finds the lock taken
        await asyncio.sleep(0)
        loop_ran.set()
        assert await job == "loop"
        await asyncio.to_thread(thread.join)

    asyncio.run(main())
    assert names(db_path(db)) == ["loop", "thread"]


def test_the_loop_does_not_wait_for_another_process_holding_sqlites_lock(db):
    other = sqlite3.connect(db_path(db), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO items (name) VALUES ('other')")

    async def main() -> None:
        job = asyncio.ensure_future(db.write_async(insert("loop")))
        await asyncio.sleep(0.05)  # the loop is free while the job waits for SQLite's lock
        assert not job.done()
        other.execute("COMMIT")
        assert await job == "loop"

    try:
        asyncio.run(main())
    finally:
        other.close()
    assert names(db_path(db)) == ["loop", "other"]


def test_a_batch_waits_for_another_process_holding_the_write_lock_without_blocking_the_loop(db):
    """Another server process (``serve --workers``) is writing: it holds the flock beside the
    database. The batch runs once that process lets go, and the loop serves meanwhile."""
    other = WriteLock(lock_path_for(db.engine.url.database))
    other.acquire()

    async def main() -> None:
        job = asyncio.ensure_future(db.write_async(insert("loop")))
        await asyncio.sleep(0.05)  # the loop is free while the job waits
        assert not job.done()
        other.release()
        assert await job == "loop"

    try:
        asyncio.run(main())
    finally:
        other.close()
    assert names(db_path(db)) == ["loop"]


def test_a_write_lock_that_cannot_be_had_fails_the_waiting_jobs_and_not_the_writer(db, monkeypatch):
    """Waiting for the lock fails (an OS error from flock): the jobs waiting get that error, and
    the writer takes later jobs as before."""
    other = WriteLock(lock_path_for(db.engine.url.database))
    other.acquire()
    real = write_lock.fcntl.flock

    def broken(fd: int, operation: int) -> None:
        if operation == write_lock.fcntl.LOCK_EX:  # a blocking wait
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd, operation)

    monkeypatch.setattr(write_lock.fcntl, "flock", broken)

    async def main() -> None:
        with pytest.raises(OSError, match="Input/output error"):
            await db.write_async(insert("lost"))
        monkeypatch.setattr(write_lock.fcntl, "flock", real)
        other.release()
        assert await db.write_async(insert("later")) == "later"

    try:
        asyncio.run(main())
    finally:
        other.close()
    assert names(db_path(db)) == ["later"]


def test_jobs_from_a_second_event_loop_run_too(db):
    """Tests and tools may drive one Database from several loops, one after another or at once."""

    async def burst(prefix: str) -> list[str]:
        return await asyncio.gather(*(db.write_async(insert(f"{prefix}{i}")) for i in range(50)))

    threads = [threading.Thread(target=asyncio.run, args=(burst(p),)) for p in "xyz"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    asyncio.run(burst("w"))
    assert len(names(db_path(db))) == 200


def test_savepoint_journals_stay_in_memory(db):
    """Every job runs in a savepoint; its statement journal is kept in memory, not in a temp
    file SQLite would make and unlink for each batch."""
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY


def test_a_commit_whose_loop_has_closed_lets_go_of_what_it_held():
    """The write lock is let go on the loop once a commit is done; should the loop have closed
    meanwhile, the commit thread lets it go instead (else every later writer would wait)."""
    committer = CommitThread()
    loop = asyncio.new_event_loop()
    loop.close()
    released = threading.Event()
    told: list[BaseException | None] = []
    committer.run(loop, lambda: None, told.append, orphaned=lambda _error: released.set())
    assert released.wait(timeout=30)
    committer.close()
    assert told == []


def test_the_commit_thread_hands_each_outcome_to_the_loop_in_order():
    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        committer = CommitThread()
        outcomes: list[object] = []
        done = asyncio.Event()

        def fail() -> None:
            raise OSError(errno.EIO, "disk gone")

        def then(name: str, error: BaseException | None) -> None:
            outcomes.append((name, type(error).__name__ if error else None))
            if len(outcomes) == 3:
                done.set()

        for name, work in (("a", lambda: None), ("b", fail), ("c", lambda: None)):
            committer.run(loop, work, partial(then, name), orphaned=lambda _error: None)
        await done.wait()
        await asyncio.to_thread(committer.close)
        return outcomes

    assert asyncio.run(main()) == [("a", None), ("b", "OSError"), ("c", None)]


class _GatedLock:
    """A write lock another writer holds until ``gate`` is set; then the wait either gets it or
    raises ``error``. Counts its releases."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.gate = threading.Event()
        self.error = error
        self.held = False
        self.releases = 0

    def acquire(self, blocking: bool = True) -> bool:
        if not blocking:
            return False  # someone else is writing
        assert self.gate.wait(timeout=30)
        if self.error is not None:
            raise self.error
        self.held = True
        return True

    def release(self) -> None:
        self.releases += 1
        self.held = False


def _wait_for_the_lock_then_close_the_loop(lock: _GatedLock) -> GroupWriter:
    """A job queued while the lock is taken (the commit thread waits for it), then its loop closed
    before the wait ends."""
    never = partial(pytest.fail, "nothing is written")
    writer = GroupWriter(never, lambda _dbapi: never(), lock)
    loop = asyncio.new_event_loop()

    async def queue_one() -> None:
        writer.submit(lambda _tx: None)
        await asyncio.sleep(0)  # the writer's flush runs: it hands the wait to the commit thread

    loop.run_until_complete(queue_one())
    loop.close()
    lock.gate.set()
    return writer


def test_a_lock_wait_whose_loop_has_closed_lets_go_of_the_lock_it_got():
    lock = _GatedLock()
    writer = _wait_for_the_lock_then_close_the_loop(lock)
    writer.close()  # joins the commit thread: the wait and its orphaned hook are over
    assert lock.releases == 1  # else every later writer would wait for ever
    assert not lock.held


def test_a_lock_wait_whose_loop_has_closed_and_that_failed_lets_go_of_nothing():
    lock = _GatedLock(OSError(errno.ENOLCK, "no locks available"))
    writer = _wait_for_the_lock_then_close_the_loop(lock)
    writer.close()
    assert lock.releases == 0  # it never had the lock: releasing would free another writer's
