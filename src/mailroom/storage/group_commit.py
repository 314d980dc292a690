"""Group commit for SQLite: the statements run on the event loop, one durable commit per batch.

Every small message costs a write transaction (send, acknowledge), and every authenticated
request spends its token. With ``synchronous=FULL`` each commit is an fsync of the WAL. With one
transaction per request in the thread pool, requests queued on the write lock and fought for
the GIL: measured, most of the server's CPU per message went there rather than into the
statements. A writer thread is little better: ``sqlite3`` releases the GIL around every
statement, and each time the writer must win it back from the busy event loop.

So a ``GroupWriter`` runs the statements where the requests are, on the event loop: they take
a few microseconds each. Jobs (``work(tx)``) submitted while a commit is in flight wait; then
one ``BEGIN IMMEDIATE`` transaction runs every waiting job, each in a savepoint (a job that
raises is rolled back to it and leaves the others alone), and only the ``COMMIT`` (the fsync) is
handed to a thread of its own. No job hears of success before that commit returned, so the
durability is that of a transaction of its own; a failed commit fails every job of the batch.

The writer holds the database's write lock (``storage.write_lock``: a thread lock and an
``flock`` shared with other processes) from ``BEGIN`` to the end of the commit, so
``Database.write()`` callers in threads (maintenance, chunk uploads, admin) and other server
processes take turns with it. The loop never waits for a lock: when the write lock is taken, the
commit thread waits for it and the batch then runs on the loop as usual. If SQLite's own lock is
held all the same (a program that does not use the write lock), the batch runs in a worker
thread instead, which may wait. A job submitted from another event loop than the one the writer
is serving (tests run several) runs that way too.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

from mailroom.storage.hot import Tx
from mailroom.storage.write_lock import WriteLock

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Jobs in one transaction at most: bounds how long the write lock is held at a time.
MAX_BATCH = 256
#: How long SQLite may wait for another process's write lock once a batch runs in a thread.
BUSY_WAIT_MS = 30_000


@dataclass(slots=True)
class _Job(Generic[T]):
    work: Callable[[Tx], T]
    future: asyncio.Future[T]
    outcome: tuple[bool, Any] = field(default=(False, None))


class GroupWriter:
    def __init__(self, connect: Callable[[], Any], make_tx: Callable[[Any], Tx], lock: WriteLock) -> None:
        self._connect = connect  # a pool connection (SQLite, usable from any thread)
        self._make_tx = make_tx  # the driver connection → a Tx on it
        self._lock = lock
        self._pooled: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Job[Any]] = []
        self._busy = False  # a batch is running or committing
        self._committer = CommitThread()
        self._closed = False

    def submit(self, work: Callable[[Tx], T]) -> asyncio.Future[T]:
        """Queue ``work`` from a coroutine; await the returned future for its result."""
        if self._closed:
            raise RuntimeError("the database writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._loop is not loop:
            if self._busy or self._pending:  # serving another loop: this job goes its own way
                self._run_in_thread(loop, [_Job(work, future)])
                return future
            self._loop = loop
        self._pending.append(_Job(work, future))
        if not self._busy:
            self._busy = True
            loop.call_soon(self._flush)
        return future

    def close(self) -> None:
        self._closed = True
        self._committer.close()
        if self._pooled is not None:
            self._pooled.close()
            self._pooled = None

    # -- one batch ---------------------------------------------------------------------------------
    def _flush(self) -> None:
        """Run the waiting jobs (on the loop), then commit them in the commit thread."""
        loop = self._loop
        assert loop is not None
        if not self._pending:
            self._busy = False
            return
        if self._lock.acquire(blocking=False):
            self._write(loop)
            return
        # Another thread or process is writing. The commit thread is idle (one batch at a time):
        # it waits for the lock, and the batch then runs here as usual.
        self._committer.run(
            loop, self._lock.acquire, partial(self._locked, loop), orphaned=self._let_go_if_had
        )

    def _locked(self, loop: asyncio.AbstractEventLoop, error: BaseException | None) -> None:
        if error is None:
            self._write(loop)
            return
        # waiting for the write lock raised: every waiting job fails with that error
        batch, self._pending = self._pending, []
        for job in batch:
            job.outcome = (False, error)
        _settle_all(batch)
        self._busy = False

    def _write(self, loop: asyncio.AbstractEventLoop) -> None:
        """With the write lock held: up to MAX_BATCH jobs in one transaction, committed in the thread."""
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        dbapi = self._dbapi()
        try:
            dbapi.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # a process that does not use the WriteLock is writing
            self._lock.release()
            self._run_in_thread(loop, batch, then=self._next)
            return
        try:
            tx = self._make_tx(dbapi)
            for job in batch:
                job.outcome = _run_job(dbapi, tx, job)
        except BaseException as exc:  # the transaction itself broke (not a job's own error)
            dbapi.rollback()
            self._lock.release()
            for job in batch:
                job.outcome = (False, exc)
            _settle_all(batch)
            self._next()
            if not isinstance(exc, Exception):
                raise
            return
        self._committer.run(
            loop, partial(self._commit, dbapi), partial(self._committed, batch), orphaned=self._let_go
        )

    def _let_go(self, _error: BaseException | None) -> None:
        """A commit's loop has closed: the lock is held whether the commit worked or not."""
        self._lock.release()

    def _let_go_if_had(self, error: BaseException | None) -> None:
        """A lock wait's loop has closed: the lock is held only if the wait got it."""
        if error is None:
            self._lock.release()

    @staticmethod
    def _commit(dbapi: Any) -> None:
        try:
            dbapi.commit()
        except BaseException:
            dbapi.rollback()
            raise

    def _committed(self, batch: list[_Job[Any]], error: BaseException | None) -> None:
        # released here rather than in the commit thread: one time fewer that thread needs the
        # GIL back from the busy loop, each time a wait for both threads on this machine
        self._lock.release()
        if error is not None:
            log.warning("write batch of %d failed: %s", len(batch), type(error).__name__)
            for job in batch:
                job.outcome = (False, error)
        _settle_all(batch)
        self._next()

    def _next(self) -> None:
        if self._pending:
            self._flush()
        else:
            self._busy = False

    def _dbapi(self) -> Any:
        if self._pooled is None:
            self._pooled = self._connect()
            self._pooled.driver_connection.execute("PRAGMA busy_timeout=0")  # never wait on the loop
        return self._pooled.driver_connection

    # -- the way round, in a worker thread -----------------------------------------------------
    def _run_in_thread(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Job[Any]], then: Callable[[], None] | None = None
    ) -> None:
        done = loop.run_in_executor(None, self._run_blocking, batch)

        def finished(_: object) -> None:
            _settle_all(batch)
            if then is not None:
                then()

        done.add_done_callback(finished)

    def _run_blocking(self, batch: list[_Job[Any]]) -> None:
        pooled = self._connect()
        dbapi = pooled.driver_connection
        try:
            with self._lock:
                dbapi.execute(f"PRAGMA busy_timeout={BUSY_WAIT_MS}")
                dbapi.execute("BEGIN IMMEDIATE")
                tx = self._make_tx(dbapi)
                try:
                    for job in batch:
                        job.outcome = _run_job(dbapi, tx, job)
                    dbapi.commit()
                except BaseException:
                    dbapi.rollback()
                    raise
        except Exception as exc:
            log.warning("write batch of %d failed: %s", len(batch), type(exc).__name__)
            for job in batch:
                job.outcome = (False, exc)
        finally:
            pooled.close()


#: (loop, work, then, orphaned) of ``CommitThread.run``
_Work = tuple[
    asyncio.AbstractEventLoop,
    Callable[[], object],
    Callable[[BaseException | None], None],
    Callable[[BaseException | None], None],
]


class CommitThread:
    """The thread of a writer's commits (and of its waits for the write lock).

    One call, ``run(loop, work, then, orphaned=...)``: ``work()`` runs in the thread, then
    ``then(error)`` on ``loop`` (``error`` None when ``work`` returned), or ``orphaned(error)`` in
    the thread if ``loop`` has closed meanwhile (to let go of what ``then`` would have). One queue put and one
    ``call_soon_threadsafe`` per commit: a thread pool's futures, conditions and chained asyncio
    futures cost the busy event loop, and the thread the GIL, several times as much.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def run(
        self,
        loop: asyncio.AbstractEventLoop,
        work: Callable[[], object],
        then: Callable[[BaseException | None], None],
        *,
        orphaned: Callable[[BaseException | None], None],
    ) -> None:
        if self._closed:
            raise RuntimeError("the commit thread is closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="mailroom-commit", daemon=True)
            self._thread.start()
        self._queue.put((loop, work, then, orphaned))

    def close(self) -> None:
        """Stop once the work already given has run."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            loop, work, then, orphaned = item
            error: BaseException | None = None
            try:
                work()
            except BaseException as exc:  # handed to the loop, as a future would
                error = exc
            try:
                loop.call_soon_threadsafe(then, error)
            except RuntimeError:  # the loop closed meanwhile: no one to tell
                orphaned(error)


def _run_job(dbapi: Any, tx: Tx, job: _Job[Any]) -> tuple[bool, Any]:
    if job.future.cancelled():  # its caller went away before it ran: nothing to do
        return (False, asyncio.CancelledError())
    dbapi.execute("SAVEPOINT job")
    try:
        result = job.work(tx)
    except Exception as exc:
        dbapi.execute("ROLLBACK TO job")
        dbapi.execute("RELEASE job")
        return (False, exc)
    dbapi.execute("RELEASE job")
    return (True, result)


def _settle_all(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        if job.future.done():  # cancelled while it waited
            continue
        ok, value = job.outcome
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)
