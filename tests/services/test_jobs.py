"""The durable job runner on real databases: run once, progress and log by version, cancel,
recovery after a process stops, periodic steps claimed once, waiting without a thread."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from mailroom.clock import FixedClock
from mailroom.container import Container
from mailroom.domain.jobs import JobState
from mailroom.services.jobs import (
    JobContext,
    JobFailed,
    JobKind,
    JobNotFound,
    JobRunner,
    JobService,
    JobWatch,
    Periodic,
    RunnerSettings,
)
from mailroom.storage.repos import jobs as repo

LEASE = timedelta(seconds=30)


def runner(
    container: Container, service: JobService, name: str, periodic: list[Periodic] | None = None
) -> JobRunner:
    settings = RunnerSettings(threads=0, lease=LEASE, poll=timedelta(seconds=0.05), runner_id=name)
    return JobRunner(service, container.db, container.clock, settings, periodic or [])


@pytest.fixture
def kinds() -> dict[str, JobKind]:
    return {}


@pytest.fixture
def service(container: Container, kinds: dict[str, JobKind]) -> JobService:
    return JobService(container.db, container.clock, kinds)


def add(kinds: dict[str, JobKind], name: str, run: Callable[[JobContext], Any], **kw: Any) -> None:
    kinds[name] = JobKind(name, run, **kw)


def test_a_job_runs_and_its_result_log_and_versions_are_kept(container, service, kinds):
    def count(ctx: JobContext) -> dict[str, int]:
        for n in range(3):
            ctx.log(f"step {n}")
            ctx.progress((n + 1) * 33)
        return {"total": ctx.arguments["upTo"]}

    add(kinds, "Count", count)
    job = service.submit("Count", {"upTo": 3}, owner="admin")
    assert job.state is JobState.QUEUED
    assert job.status_version == 1
    assert runner(container, service, "a").run_one()

    done = service.status(job.job_id, 0)
    assert done.job.state is JobState.SUCCEEDED
    assert done.job.result == {"total": 3}
    assert done.job.owner == "admin"
    assert done.job.finished_at is not None
    assert [line.text for line in done.log] == ["step 0", "step 1", "step 2"]
    # claim, 3 log lines, 3 progress changes and the end: each one version
    assert done.job.status_version == 1 + 1 + 3 + 3 + 1
    after_first_line = done.log[0].status_version
    assert [line.text for line in service.status(job.job_id, after_first_line).log] == ["step 1", "step 2"]
    assert service.status(job.job_id, done.job.status_version).log == []


def test_failures_end_the_job_failed_with_their_message(container, service, kinds):
    def refuse(ctx: JobContext) -> None:
        raise JobFailed("Mailbox has messages waiting", "2 messages")

    def crash(ctx: JobContext) -> None:
        raise ZeroDivisionError("boom")

    add(kinds, "Refuse", refuse)
    add(kinds, "Crash", crash)
    refused = service.submit("Refuse", {}, owner="a")
    crashed = service.submit("Crash", {}, owner="a")
    run = runner(container, service, "a")
    assert run.run_one()
    assert run.run_one()
    assert not run.run_one()
    first, second = service.get(refused.job_id), service.get(crashed.job_id)
    assert first.state is JobState.FAILED
    assert first.error is not None
    assert (first.error.message, first.error.details) == ("Mailbox has messages waiting", "2 messages")
    assert second.state is JobState.FAILED
    assert second.error is not None
    assert "ZeroDivisionError: boom" in second.error.details


def test_unknown_ids_and_kinds_are_refused(service):
    with pytest.raises(JobNotFound):
        service.get("0" * 32)
    with pytest.raises(JobNotFound):
        service.status("../../etc/passwd")
    with pytest.raises(JobNotFound):
        service.cancel("f" * 32)
    with pytest.raises(Exception, match="no job kind"):
        service.submit("Nope", {}, owner="a")


def test_a_queued_job_cancelled_never_runs(container, service, kinds):
    ran: list[str] = []
    add(kinds, "Note", lambda ctx: ran.append("ran"))
    job = service.submit("Note", {}, owner="a")
    assert service.cancel(job.job_id).state is JobState.CANCELLED
    assert not runner(container, service, "a").run_one()
    assert ran == []


def test_a_running_job_stops_at_its_next_safe_point_once_cancelled(container, service, kinds):
    started, stop_seen = threading.Event(), threading.Event()
    steps: list[int] = []

    def patient(ctx: JobContext) -> None:
        started.set()
        for n in range(10_000):
            steps.append(n)
            try:
                ctx.check()
            except BaseException:
                stop_seen.set()
                raise
            threading.Event().wait(0.01)

    add(kinds, "Patient", patient)
    job = service.submit("Patient", {}, owner="a")
    worker = threading.Thread(target=runner(container, service, "a").run_one)
    worker.start()
    assert started.wait(10)
    assert service.cancel(job.job_id).cancel_requested
    worker.join(30)
    assert stop_seen.is_set()
    assert len(steps) < 10_000
    assert service.get(job.job_id).state is JobState.CANCELLED


def test_each_job_runs_once_however_many_runners_take_turns(container, service, kinds):
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def note(ctx: JobContext) -> None:
        with lock:
            counts[ctx.job.job_id] += 1

    add(kinds, "Note", note)
    submitted = [service.submit("Note", {"n": n}, owner="a").job_id for n in range(40)]
    runners = [runner(container, service, f"r{n}") for n in range(4)]

    def drain(run: JobRunner) -> None:
        while run.run_one():
            pass

    threads = [threading.Thread(target=drain, args=(run,)) for run in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert counts == Counter({job_id: 1 for job_id in submitted})
    assert all(service.get(job_id).state is JobState.SUCCEEDED for job_id in submitted)


def _left_running(container: Container, service: JobService, kind: str) -> str:
    """A job claimed by a runner whose process then stopped (it never renews its lease)."""
    job = service.submit(kind, {}, owner="a")
    now = container.clock.now()
    with container.db.write() as conn:
        claimed = repo.claim_next(conn, [kind], "gone:1:x", now, now + LEASE)
        assert claimed is not None
        assert repo.save_checkpoint(conn, job.job_id, "gone:1:x", {"done": 7})
    return job.job_id


def test_a_stopped_process_leaves_no_job_running_forever(container, service, kinds, clock: FixedClock):
    resumed_from: list[dict[str, Any]] = []
    add(kinds, "Resumable", lambda ctx: resumed_from.append(ctx.checkpoint) or "done", resumable=True)
    add(kinds, "OneShot", lambda ctx: "never")
    resumable = _left_running(container, service, "Resumable")
    one_shot = _left_running(container, service, "OneShot")
    run = runner(container, service, "b")

    assert run.recover_stale() == 0  # the lease has not run out
    clock.advance(LEASE + timedelta(seconds=1))
    assert run.recover_stale() == 2

    failed = service.get(one_shot)
    assert failed.state is JobState.FAILED
    assert failed.error is not None
    assert "process running it stopped" in failed.error.details
    assert service.get(resumable).state is JobState.QUEUED
    assert run.run_one()
    finished = service.get(resumable)
    assert finished.state is JobState.SUCCEEDED
    assert finished.attempts == 2
    assert resumed_from == [{"done": 7}]


def test_a_runner_that_lost_its_lease_changes_nothing_more(container, service, kinds, clock: FixedClock):
    taken = threading.Event()
    resume = threading.Event()

    def slow(ctx: JobContext) -> str:
        taken.set()
        assert resume.wait(30)
        ctx.log("too late")  # raises: another runner holds the job now
        return "late"

    add(kinds, "Slow", slow, resumable=True)
    job = service.submit("Slow", {}, owner="a")
    first = runner(container, service, "first")
    worker = threading.Thread(target=first.run_one)
    worker.start()
    assert taken.wait(10)
    clock.advance(LEASE + timedelta(seconds=1))
    assert runner(container, service, "second").recover_stale() == 1  # requeued for another
    resume.set()
    worker.join(30)
    state = service.get(job.job_id)
    assert state.state is JobState.QUEUED
    assert state.result is None
    assert service.status(job.job_id).log == []


def test_periodic_steps_run_once_per_period_and_a_failing_one_stops_no_other(container, service, clock):
    runs: Counter[str] = Counter()

    def failing() -> None:
        runs["failing"] += 1
        raise OSError("disk on fire")

    steps = [
        Periodic("test.failing", timedelta(minutes=1), failing),
        Periodic("test.fine", timedelta(minutes=1), lambda: runs.update(["fine"]) or {"ok": 1}),
    ]
    runners = [runner(container, service, f"r{n}", steps) for n in range(3)]
    runners[0].start()  # records the schedules (no threads: threads=0)
    for run in runners:
        run.run_due_periodic()
    assert runs == Counter({"failing": 1, "fine": 1})
    clock.advance(timedelta(seconds=59))
    for run in runners:
        run.run_due_periodic()
    assert runs == Counter({"failing": 1, "fine": 1})
    clock.advance(timedelta(seconds=2))
    for run in runners:
        run.run_due_periodic()
    assert runs == Counter({"failing": 2, "fine": 2})
    with container.db.read() as conn:
        recorded = {row["name"]: row for row in repo.schedules(conn)}
    assert recorded["test.failing"]["last_outcome"] == "failed"
    assert "disk on fire" in recorded["test.failing"]["last_error"]
    assert recorded["test.fine"]["last_outcome"] == "succeeded"


def test_finished_jobs_are_forgotten_after_the_retention(container, service, kinds, clock):
    add(kinds, "Note", lambda ctx: ctx.log("hello"))
    old = service.submit("Note", {}, owner="a")
    runner(container, service, "a").run_one()
    clock.advance(timedelta(days=2))
    waiting = service.submit("Note", {}, owner="a")
    assert service.forget_finished(timedelta(days=1)) == 1
    with pytest.raises(JobNotFound):
        service.get(old.job_id)
    assert service.get(waiting.job_id).state is JobState.QUEUED
    with container.db.read() as conn:
        assert repo.log_since(conn, old.job_id, 0, 10) == []


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_waiters_wake_when_the_job_moves_and_hold_no_thread(container, service, kinds, loop):
    add(kinds, "Note", lambda ctx: ctx.log("hello"))
    job = service.submit("Note", {}, owner="a")
    # another process's service: its changes reach the watch only through the database
    elsewhere = JobService(container.db, container.clock, kinds)
    watch = JobWatch(service, timedelta(seconds=0.05), loop)

    async def scenario() -> tuple[int, int, float]:
        waiters = [loop.create_task(watch.wait(job.job_id, 1, 60)) for _ in range(1000)]
        await asyncio.sleep(0.2)
        threads_while_waiting = threading.active_count()
        assert watch.waiting == 1000
        assert not any(w.done() for w in waiters)
        started = loop.time()
        await asyncio.to_thread(runner(container, elsewhere, "other").run_one)
        await asyncio.wait_for(asyncio.gather(*waiters), 30)
        await watch.aclose()
        return threads_while_waiting, watch.waiting, loop.time() - started

    before = threading.active_count()
    during, left, _ = loop.run_until_complete(scenario())
    assert during <= before + 2  # the loop's default executor, for the shared version poll
    assert left == 0


def test_a_waiter_returns_at_the_timeout_when_nothing_moves(container, service, kinds, loop):
    add(kinds, "Note", lambda ctx: None)
    job = service.submit("Note", {}, owner="a")
    watch = JobWatch(service, timedelta(seconds=0.05), loop)
    loop.run_until_complete(watch.wait(job.job_id, 1, 0.3))
    loop.run_until_complete(watch.aclose())
    assert watch.waiting == 0
    assert service.get(job.job_id).status_version == 1


def test_a_change_in_this_process_wakes_its_waiters_at_once(container, service, kinds, loop):
    add(kinds, "Note", lambda ctx: None)
    job = service.submit("Note", {}, owner="a")
    watch = JobWatch(service, timedelta(hours=1), loop)  # no database poll within the test

    async def scenario() -> None:
        waiter = loop.create_task(watch.wait(job.job_id, 1, 60))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(service.cancel, job.job_id)
        await asyncio.wait_for(waiter, 10)
        await watch.aclose()

    loop.run_until_complete(scenario())
    assert service.get(job.job_id).state is JobState.CANCELLED
