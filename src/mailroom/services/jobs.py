"""The durable job runner: work that outlives a request, run once across processes, polled by id.

A job is a row (``storage.repos.jobs``). Every server process runs a ``JobRunner``: a few
threads that claim queued jobs (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, SQLite's one writer
elsewhere), run them, and keep a lease on each while it runs. A process that stops mid-job
stops renewing its leases; the next runner to look finds the job stale and resumes it from its
checkpoint (a ``resumable`` kind) or fails it with the reason. The same threads run the periodic
steps (``Periodic``: the maintenance sweep's parts), each claimed by one process per period,
each recording its own outcome, so one failing step does not stop the others.

Nothing here knows HTTP: the admin API starts and polls jobs through ``JobService``, and waits
for a change with ``JobWatch`` (a coroutine holding no thread and no database connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mailroom.clock import Clock
from mailroom.domain.jobs import Job, JobError, JobLogLine, JobState, new_job_id, valid_job_id
from mailroom.errors import MailroomError, NotFound, ValidationFailed
from mailroom.storage.db import Database
from mailroom.storage.repos import jobs as repo

log = logging.getLogger(__name__)

#: Log lines a status answer carries at most (the newest; a poller far behind misses the rest).
LOG_LINES_PER_STATUS = 1000
#: Stale jobs a runner looks at in one pass.
STALE_BATCH = 20
#: How often, at most, a running job's safe points read its cancel flag from the database.
CANCEL_CHECK_SECONDS = 0.25


class JobNotFound(NotFound):
    description = "Unknown or expired job token"


class JobCancelled(Exception):
    """Raised inside a job by ``JobContext.check`` once it has been asked to stop."""


class RunnerStopping(Exception):
    """Raised inside a job by ``JobContext.check`` while its process shuts down."""


class JobFailed(MailroomError):
    """Raised by a job to fail with a message (and details) meant for the person who started it."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


@dataclass(frozen=True)
class JobKind:
    """What a job of this kind does: ``run(context)`` returns its JSON result or raises."""

    name: str
    run: Callable[[JobContext], Any]
    #: Resumed from its checkpoint after its process stopped (else failed with the reason).
    resumable: bool = False
    #: Runs this many times at most (the first and each resumption).
    max_attempts: int = 3


@dataclass(frozen=True)
class Periodic:
    """A step run every ``interval`` by one process of all that share the database."""

    name: str
    interval: timedelta
    run: Callable[[], Any]


@dataclass(frozen=True)
class JobStatus:
    """What a poller is given: the job, and the log lines after the version it knew."""

    job: Job
    log: list[JobLogLine]


@dataclass
class RunnerSettings:
    threads: int = 2
    lease: timedelta = timedelta(seconds=60)
    poll: timedelta = timedelta(seconds=1)
    retention: timedelta = timedelta(days=30)
    runner_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    )


class JobService:
    """Starting, reading and cancelling jobs; what a face calls."""

    def __init__(self, db: Database, clock: Clock, kinds: Mapping[str, JobKind]) -> None:
        self._db = db
        self._clock = clock
        self._kinds = kinds
        self._listeners: list[Callable[[str], None]] = []

    @property
    def kinds(self) -> Mapping[str, JobKind]:
        return self._kinds

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(job_id)`` (from any thread) whenever this process changes a job."""
        self._listeners.append(listener)

    def changed(self, job_id: str) -> None:
        for listener in self._listeners:
            listener(job_id)

    def submit(self, kind: str, arguments: Mapping[str, Any], owner: str) -> Job:
        if kind not in self._kinds:
            raise ValidationFailed("body", "kind", f"no job kind {kind!r}")
        now = self._clock.now()
        job = Job(
            job_id=new_job_id(),
            kind=kind,
            arguments=dict(arguments),
            owner=owner,
            state=JobState.QUEUED,
            status_version=1,
            percent=0,
            status_text=None,
            result=None,
            error=None,
            cancel_requested=False,
            attempts=0,
            created_at=now,
            started_at=None,
            finished_at=None,
        )
        with self._db.write() as conn:
            repo.insert_job(conn, job)
        self.changed(job.job_id)
        return job

    def get(self, job_id: str) -> Job:
        if not valid_job_id(job_id):
            raise JobNotFound()
        with self._db.read() as conn:
            job = repo.get(conn, job_id)
        if job is None:
            raise JobNotFound()
        return job

    def status(self, job_id: str, known_version: int = 0) -> JobStatus:
        if not valid_job_id(job_id):
            raise JobNotFound()
        with self._db.read() as conn:
            job = repo.get(conn, job_id)
            if job is None:
                raise JobNotFound()
            lines = repo.log_since(conn, job_id, known_version, LOG_LINES_PER_STATUS)
        return JobStatus(job, lines)

    def versions(self, job_ids: Sequence[str]) -> dict[str, int]:
        with self._db.read() as conn:
            return repo.versions(conn, job_ids)

    def cancel(self, job_id: str) -> Job:
        if not valid_job_id(job_id):
            raise JobNotFound()
        with self._db.write() as conn:
            state = repo.request_cancel(conn, job_id, self._clock.now())
        if state is None:
            raise JobNotFound()
        self.changed(job_id)
        return self.get(job_id)

    def recent(
        self, *, states: Iterable[JobState] = (), kind: str = "", limit: int = 100, offset: int = 0
    ) -> list[Job]:
        with self._db.read() as conn:
            return repo.recent(conn, states=states, kind=kind, limit=limit, offset=offset)

    def forget_finished(self, retention: timedelta) -> int:
        with self._db.write() as conn:
            return repo.forget_finished(conn, self._clock.now() - retention)


class JobContext:
    """What a running job is given: its arguments and checkpoint, and ways to report and stop."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self._runner = runner
        self.job = job
        self.arguments = job.arguments
        self.checkpoint: dict[str, Any] = dict(job.checkpoint or {})
        self._cancel_seen = job.cancel_requested
        self._cancel_read = time.monotonic()

    def log(self, *lines: str) -> None:
        """Add lines to the job's log (each raises the status version)."""
        if lines:
            self._runner.write(self, lambda conn, runner: repo.add_log(conn, self.job.job_id, runner, lines))

    def progress(self, percent: int | None, text: str | None = None) -> None:
        percent = None if percent is None else max(0, min(100, percent))
        self._runner.write(
            self, lambda conn, runner: repo.set_progress(conn, self.job.job_id, runner, percent, text)
        )

    def save(self, checkpoint: Mapping[str, Any]) -> None:
        """Keep ``checkpoint``: a resumed job starts with it as ``self.checkpoint``."""
        self.checkpoint = dict(checkpoint)
        self._runner.write(
            self,
            lambda conn, runner: repo.save_checkpoint(conn, self.job.job_id, runner, self.checkpoint),
            notify=False,
        )

    def check(self) -> None:
        """A safe point: raises ``JobCancelled`` once the job was asked to stop, and
        ``RunnerStopping`` while the process shuts down."""
        if self._runner.stopping.is_set():
            raise RunnerStopping()
        if self._cancel_seen:
            raise JobCancelled()
        now = time.monotonic()
        if now - self._cancel_read >= CANCEL_CHECK_SECONDS:
            self._cancel_read = now
            with self._runner.db.read() as conn:
                self._cancel_seen = repo.cancel_requested(conn, self.job.job_id)
            if self._cancel_seen:
                raise JobCancelled()


class LeaseLost(Exception):
    """This runner no longer holds the job (it was found stale and taken by another)."""


class JobRunner:
    """Runs queued jobs and periodic steps in a few threads of this process."""

    def __init__(
        self,
        service: JobService,
        db: Database,
        clock: Clock,
        settings: RunnerSettings,
        periodic: Sequence[Periodic] = (),
    ) -> None:
        self.service = service
        self.db = db
        self._clock = clock
        self._settings = settings
        self._periodic = list(periodic)
        self.stopping = threading.Event()
        self._wake = threading.Condition()
        self._woken = False
        self._threads: list[threading.Thread] = []
        self._running: dict[str, JobContext] = {}
        self._running_lock = threading.Lock()
        service.listen(self._on_change)

    @property
    def runner_id(self) -> str:
        return self._settings.runner_id

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        now = self._clock.now()
        with self.db.write() as conn:
            for step in self._periodic:
                repo.ensure_schedule(conn, step.name, now)
        for n in range(self._settings.threads):
            thread = threading.Thread(target=self._work, name=f"mailroom-jobs-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self._settings.threads:
            lease = threading.Thread(target=self._renew, name="mailroom-job-leases", daemon=True)
            lease.start()
            self._threads.append(lease)

    def stop(self, timeout: float = 10) -> None:
        """Stop taking work; running jobs stop at their next safe point (resumable ones are put
        back in the queue for any process to resume, the others fail with the reason)."""
        self.stopping.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def wake(self) -> None:
        with self._wake:
            self._woken = True
            self._wake.notify_all()

    def _on_change(self, job_id: str) -> None:
        with self._running_lock:
            mine = job_id in self._running
        if not mine:
            self.wake()  # perhaps a new job to take

    def _sleep(self) -> None:
        with self._wake:
            if not self._woken:
                self._wake.wait(self._settings.poll.total_seconds())
            self._woken = False

    # -- the work loop ------------------------------------------------------------------------
    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                busy = self.run_pending()
            except Exception:
                log.exception("job runner pass failed; will retry")
                busy = False
            if not busy:
                self._sleep()

    def run_pending(self) -> bool:
        """One pass: recover stale jobs, run due periodic steps, run one queued job. True if it
        did something (so the caller looks again at once)."""
        self.recover_stale()
        ran = self.run_due_periodic()
        return self.run_one() or ran

    def recover_stale(self) -> int:
        now = self._clock.now()
        with self.db.write() as conn:
            stale = repo.stale(conn, now, STALE_BATCH)
            for job in stale:
                self._recover(conn, job, now)
        for job in stale:
            self.service.changed(job.job_id)
        return len(stale)

    def _recover(self, conn: Any, job: Job, now: datetime) -> None:
        kind = self.service.kinds.get(job.kind)
        if (
            kind is not None
            and kind.resumable
            and job.attempts < kind.max_attempts
            and not job.cancel_requested
        ):
            log.warning(
                "job %s (%s) was left running by a stopped process: resuming it", job.job_id, job.kind
            )
            repo.requeue(conn, job.job_id, "resuming after the server process running it stopped")
            return
        log.warning("job %s (%s) was left running by a stopped process: failing it", job.job_id, job.kind)
        reason = "the server process running it stopped"
        if kind is not None and kind.resumable:
            reason += f" ({job.attempts} attempts)"
        repo.fail_stale(conn, job.job_id, now, JobError("Job interrupted", reason))

    def run_due_periodic(self) -> bool:
        ran = False
        for step in self._periodic:
            if self.stopping.is_set():
                break
            now = self._clock.now()
            with self.db.write() as conn:
                claimed = repo.claim_schedule(conn, step.name, self.runner_id, now, now + step.interval)
            if claimed:
                ran = True
                self._run_periodic(step)
        return ran

    def _run_periodic(self, step: Periodic) -> None:
        try:
            result = step.run()
        except Exception as exc:
            log.exception("periodic step %s failed; the others go on", step.name)
            with self.db.write() as conn:
                repo.record_schedule_outcome(
                    conn, step.name, self._clock.now(), error=f"{type(exc).__name__}: {exc}"
                )
            return
        with self.db.write() as conn:
            repo.record_schedule_outcome(conn, step.name, self._clock.now(), result=result)

    def run_one(self) -> bool:
        if self.stopping.is_set():
            return False
        now = self._clock.now()
        with self.db.write() as conn:
            job = repo.claim_next(
                conn, list(self.service.kinds), self.runner_id, now, now + self._settings.lease
            )
        if job is None:
            return False
        self.service.changed(job.job_id)
        self._run(job)
        return True

    def _run(self, job: Job) -> None:
        kind = self.service.kinds[job.kind]
        context = JobContext(self, job)
        with self._running_lock:
            self._running[job.job_id] = context
        try:
            outcome = self._outcome(kind, context)
        finally:
            with self._running_lock:
                self._running.pop(job.job_id, None)
        if outcome is None:
            return  # the lease was lost: whoever holds the job now decides its end
        state, result, error = outcome
        with self.db.write() as conn:
            if state is JobState.QUEUED:
                repo.requeue(conn, job.job_id, "the server process running it stopped; it resumes")
            else:
                repo.finish(
                    conn, job.job_id, self.runner_id, state, self._clock.now(), result=result, error=error
                )
        self.service.changed(job.job_id)

    def _outcome(self, kind: JobKind, context: JobContext) -> tuple[JobState, Any, JobError | None] | None:
        try:
            context.check()
            result = kind.run(context)
        except LeaseLost:
            log.warning("job %s: lease lost to another runner; stopping here", context.job.job_id)
            return None
        except JobCancelled:
            return JobState.CANCELLED, None, None
        except RunnerStopping:
            if kind.resumable:
                return JobState.QUEUED, None, None
            return JobState.FAILED, None, JobError("Job interrupted", "the server process running it stopped")
        except JobFailed as exc:
            return JobState.FAILED, None, JobError(exc.description, exc.details)
        except MailroomError as exc:
            return JobState.FAILED, None, JobError(exc.description, type(exc).__name__)
        except Exception as exc:
            log.exception("job %s (%s) failed", context.job.job_id, kind.name)
            details = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return JobState.FAILED, None, JobError("The job failed with an internal error", details)
        return JobState.SUCCEEDED, result, None

    def write(self, context: JobContext, change: Callable[[Any, str], bool], *, notify: bool = True) -> None:
        """Make a change to a job this runner holds; ``LeaseLost`` if it no longer does."""
        with self.db.write() as conn:
            held = change(conn, self.runner_id)
        if not held:
            raise LeaseLost()
        if notify:
            self.service.changed(context.job.job_id)

    def _renew(self) -> None:
        every = self._settings.lease.total_seconds() / 3
        while not self.stopping.wait(every):
            with self._running_lock:
                held = list(self._running)
            if not held:
                continue
            try:
                with self.db.write() as conn:
                    repo.renew_leases(conn, self.runner_id, held, self._clock.now() + self._settings.lease)
            except Exception:
                log.exception("renewing job leases failed; will retry")


class JobWatch:
    """Waits for jobs' status versions to move, on the event loop, without a thread each.

    Waiters on one event loop share one poller: while any waits, it reads the versions of every
    waited-for job in one query each ``poll`` (jobs run by other processes), and wakes a waiter
    at once when this process changes its job (``JobService.listen``).
    """

    def __init__(self, service: JobService, poll: timedelta, loop: asyncio.AbstractEventLoop) -> None:
        self._service = service
        self._poll = poll.total_seconds()
        self._loop = loop
        self._waiters: dict[str, list[tuple[int, asyncio.Event]]] = {}
        self._poller: asyncio.Task[None] | None = None
        service.listen(self._changed_elsewhere)

    def _changed_elsewhere(self, job_id: str) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._wake, job_id, None)

    def _wake(self, job_id: str, version: int | None) -> None:
        for known, event in self._waiters.get(job_id, ()):
            if version is None or version > known:
                event.set()

    async def wait(self, job_id: str, known_version: int, timeout: float) -> None:
        """Return once ``job_id``'s version may be past ``known_version``, or after ``timeout``."""
        if timeout <= 0:
            return
        event = asyncio.Event()
        entry = (known_version, event)
        self._waiters.setdefault(job_id, []).append(entry)
        if self._poller is None or self._poller.done():
            self._poller = self._loop.create_task(self._poll_versions())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            waiting = self._waiters.get(job_id, [])
            if entry in waiting:
                waiting.remove(entry)
            if not waiting:
                self._waiters.pop(job_id, None)

    async def aclose(self) -> None:
        """Stop the shared poller (waiters still waiting return at their timeout)."""
        if self._poller is not None and not self._poller.done():
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    @property
    def waiting(self) -> int:
        return sum(len(entries) for entries in self._waiters.values())

    async def _poll_versions(self) -> None:
        while self._waiters:
            await asyncio.sleep(self._poll)
            ids = list(self._waiters)
            if not ids:
                break
            try:
                current = await asyncio.to_thread(self._service.versions, ids)
            except Exception:
                log.exception("reading job versions failed; will retry")
                continue
            for job_id in ids:
                self._wake(job_id, current.get(job_id, 1 << 62))  # a job gone is news too
