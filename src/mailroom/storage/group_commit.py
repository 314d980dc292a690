"""Group commit for SQLite: one writer thread, many small write jobs, one durable commit per batch.

Every small message costs a write transaction (send, acknowledge) and every authenticated
request records its token. With ``synchronous=FULL`` each commit is an fsync of the WAL, and
with one transaction per request in the thread pool, requests queue on the write lock, wake
each other and fight for the GIL: measured, most of the server's CPU per message went there
rather than into the statements.

A ``GroupWriter`` owns one connection and one thread. Callers hand it jobs (``work(tx)``); the
thread takes every job waiting, runs each in a savepoint of one ``BEGIN IMMEDIATE`` transaction,
commits once, and only then reports each job's result or exception. A job that raises is
rolled back to its savepoint and leaves the others alone; a failed commit fails every job of the
batch. No caller hears of success before the commit that holds its write returned, so the
durability is the same as a transaction of its own (``synchronous=FULL``: fsynced).

Results go back to asyncio callers with one ``call_soon_threadsafe`` per batch and event loop,
and to threads through a ``concurrent.futures.Future``. The writer holds the database's
in-process write lock for each batch, so ``Database.write()`` callers (maintenance, admin) and
the batches take turns without meeting SQLite's sleeping busy handler.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mailroom.storage.hot import Tx

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Jobs in one transaction at most: bounds how long the write lock is held at a time.
MAX_BATCH = 256


@dataclass(slots=True)
class _Job(Generic[T]):
    work: Callable[[Tx], T]
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[T] | concurrent.futures.Future[T]
    outcome: tuple[bool, Any] = field(default=(False, None))


class WriterClosed(RuntimeError):
    """The writer was closed: the job was not run."""


class GroupWriter:
    def __init__(
        self,
        connect: Callable[[], Any],
        make_tx: Callable[[Any], Tx],  # the driver connection → a Tx on it
        lock: threading.Lock,
        name: str = "mailroom-writer",
    ) -> None:
        self._connect = connect
        self._make_tx = make_tx
        self._lock = lock
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = threading.Lock()

    # -- submitting -------------------------------------------------------------------------------
    def submit(self, work: Callable[[Tx], T]) -> asyncio.Future[T]:
        """Queue ``work`` from a coroutine; await the returned future for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put(_Job(work, loop, future))
        return future

    def call(self, work: Callable[[Tx], T]) -> T:
        """Run ``work`` in the next batch and wait for it (from a thread other than the writer's)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("a write job cannot wait for another write job")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put(_Job(work, None, future))
        return future.result()

    def _put(self, job: _Job[Any]) -> None:
        if self._closed:
            raise WriterClosed("the database writer is closed")
        if not self._thread.is_alive():
            with self._started:
                if not self._thread.is_alive() and not self._closed:
                    self._thread.start()
        self._queue.put(job)

    def close(self) -> None:
        """Finish the jobs already queued, then stop the thread."""
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)

    # -- the writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        pooled = self._connect()  # a pool connection, held for the thread's life
        dbapi = pooled.driver_connection
        try:
            tx = self._make_tx(dbapi)
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = self._drain(batch)
                self._run_batch(dbapi, tx, batch)
                _deliver(batch)
                if stop:
                    return
        finally:
            with contextlib.suppress(Exception):
                pooled.close()

    def _drain(self, batch: list[_Job[Any]]) -> bool:
        while len(batch) < MAX_BATCH:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return False
            if job is None:
                return True
            batch.append(job)
        return False

    def _run_batch(self, dbapi: Any, tx: Tx, batch: list[_Job[Any]]) -> None:
        try:
            with self._lock:
                dbapi.execute("BEGIN IMMEDIATE")
                try:
                    for job in batch:
                        job.outcome = self._run_job(dbapi, tx, job)
                    dbapi.commit()
                except BaseException:
                    dbapi.rollback()
                    raise
        except Exception as exc:  # the batch as a whole failed (BEGIN or COMMIT): nothing is saved
            log.warning("write batch of %d failed: %s", len(batch), type(exc).__name__)
            for job in batch:
                job.outcome = (False, exc)

    @staticmethod
    def _run_job(dbapi: Any, tx: Tx, job: _Job[Any]) -> tuple[bool, Any]:
        if job.future.cancelled():
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


def _deliver(batch: list[_Job[Any]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
    for job in batch:
        if job.loop is None:
            _settle(job)
        else:
            by_loop.setdefault(job.loop, []).append(job)
    for loop, jobs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is waiting
            loop.call_soon_threadsafe(_settle_all, jobs)


def _settle_all(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        _settle(job)


def _settle(job: _Job[Any]) -> None:
    if job.future.done():  # cancelled while it waited
        return
    ok, value = job.outcome
    if ok:
        job.future.set_result(value)
    else:
        job.future.set_exception(value)
