"""SQL for jobs, their log lines and the periodic schedules (``services.jobs``).

Every change a poller can see raises ``status_version`` in the same statement that makes it,
so versions never repeat and never skip what a poller is owed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, select, update

from mailroom.domain.jobs import FINISHED, Job, JobError, JobLogLine, JobState
from mailroom.storage.tables import check_text, job_log, job_schedules, jobs, text_limits

_LIMITS = text_limits(jobs)


def _job(row: Row[Any]) -> Job:
    error = None
    if row.error_message is not None:
        error = JobError(row.error_message, row.error_details or "")
    return Job(
        job_id=row.job_id,
        kind=row.kind,
        arguments=json.loads(row.arguments),
        owner=row.owner,
        state=JobState(row.state),
        status_version=row.status_version,
        percent=row.percent,
        status_text=row.status_text,
        result=None if row.result is None else json.loads(row.result),
        error=error,
        cancel_requested=row.cancel_requested,
        attempts=row.attempts,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        checkpoint=None if row.checkpoint is None else json.loads(row.checkpoint),
    )


def insert_job(conn: Connection, job: Job) -> None:
    values = {
        "job_id": job.job_id,
        "kind": job.kind,
        "arguments": json.dumps(job.arguments),
        "owner": job.owner,
        "state": job.state.value,
        "status_version": job.status_version,
        "percent": job.percent,
        "status_text": job.status_text,
        "cancel_requested": False,
        "attempts": 0,
        "claimed_by": "",
        "created_at": job.created_at,
    }
    check_text(_LIMITS, values)
    conn.execute(insert(jobs).values(**values))


def get(conn: Connection, job_id: str) -> Job | None:
    row = conn.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
    return None if row is None else _job(row)


def versions(conn: Connection, job_ids: Sequence[str]) -> dict[str, int]:
    """The current status version of each of ``job_ids`` that exists."""
    rows = conn.execute(select(jobs.c.job_id, jobs.c.status_version).where(jobs.c.job_id.in_(job_ids)))
    return {row.job_id: row.status_version for row in rows}


def log_since(conn: Connection, job_id: str, version: int, limit: int) -> list[JobLogLine]:
    """Log lines added after ``version``, oldest first, at most ``limit`` (the newest kept)."""
    newest = (
        select(job_log.c.id, job_log.c.status_version, job_log.c.text)
        .where(job_log.c.job_id == job_id, job_log.c.status_version > version)
        .order_by(job_log.c.id.desc())
        .limit(limit)
    )
    rows = sorted(conn.execute(newest), key=lambda row: row.id)
    return [JobLogLine(row.status_version, row.text) for row in rows]


def recent(
    conn: Connection, *, states: Iterable[JobState] = (), kind: str = "", limit: int = 100, offset: int = 0
) -> list[Job]:
    stmt = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.job_id).limit(limit).offset(offset)
    wanted = [state.value for state in states]
    if wanted:
        stmt = stmt.where(jobs.c.state.in_(wanted))
    if kind:
        stmt = stmt.where(jobs.c.kind == kind)
    return [_job(row) for row in conn.execute(stmt)]


def claim_next(
    conn: Connection, kinds: Sequence[str], runner: str, now: datetime, lease_until: datetime
) -> Job | None:
    """The oldest queued job of one of ``kinds``, now running under ``runner``'s lease.

    PostgreSQL: the row is taken ``FOR UPDATE SKIP LOCKED``, so runners in other processes
    take other jobs instead of waiting; SQLite: the caller's ``BEGIN IMMEDIATE`` excludes them.
    """
    stmt = (
        select(jobs.c.job_id)
        .where(jobs.c.state == JobState.QUEUED.value, jobs.c.kind.in_(kinds))
        .order_by(jobs.c.created_at, jobs.c.job_id)
        .limit(1)
    )
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    job_id = conn.execute(stmt).scalar()
    if job_id is None:
        return None
    conn.execute(
        update(jobs)
        .where(jobs.c.job_id == job_id)
        .values(
            state=JobState.RUNNING.value,
            claimed_by=runner,
            lease_until=lease_until,
            started_at=func.coalesce(jobs.c.started_at, now),
            attempts=jobs.c.attempts + 1,
            status_version=jobs.c.status_version + 1,
        )
    )
    return get(conn, job_id)


def renew_leases(conn: Connection, runner: str, job_ids: Sequence[str], lease_until: datetime) -> None:
    conn.execute(
        update(jobs)
        .where(
            jobs.c.job_id.in_(job_ids), jobs.c.claimed_by == runner, jobs.c.state == JobState.RUNNING.value
        )
        .values(lease_until=lease_until)
    )


def set_progress(
    conn: Connection, job_id: str, runner: str, percent: int | None, status_text: str | None
) -> bool:
    """Record progress of a job ``runner`` holds; False if it no longer holds it."""
    changed = conn.execute(
        update(jobs)
        .where(_held(job_id, runner))
        .values(percent=percent, status_text=status_text, status_version=jobs.c.status_version + 1)
    ).rowcount
    return bool(changed)


def add_log(conn: Connection, job_id: str, runner: str, lines: Sequence[str]) -> bool:
    """Append ``lines``, each raising the version by one; False if ``runner`` no longer holds it."""
    version = conn.execute(
        update(jobs)
        .where(_held(job_id, runner))
        .values(status_version=jobs.c.status_version + len(lines))
        .returning(jobs.c.status_version)
    ).scalar()
    if version is None:
        return False
    first = version - len(lines) + 1
    conn.execute(
        insert(job_log),
        [{"job_id": job_id, "status_version": first + n, "text": line} for n, line in enumerate(lines)],
    )
    return True


def save_checkpoint(conn: Connection, job_id: str, runner: str, checkpoint: dict[str, Any]) -> bool:
    changed = conn.execute(
        update(jobs).where(_held(job_id, runner)).values(checkpoint=json.dumps(checkpoint))
    ).rowcount
    return bool(changed)


def cancel_requested(conn: Connection, job_id: str) -> bool:
    return bool(conn.execute(select(jobs.c.cancel_requested).where(jobs.c.job_id == job_id)).scalar())


def request_cancel(conn: Connection, job_id: str, now: datetime) -> JobState | None:
    """Ask a job to stop: a queued job is cancelled at once, a running one is flagged (its
    runner stops it at its next safe point). The state after, or None if there is no such job."""
    conn.execute(
        update(jobs)
        .where(jobs.c.job_id == job_id, jobs.c.state == JobState.QUEUED.value)
        .values(state=JobState.CANCELLED.value, finished_at=now, status_version=jobs.c.status_version + 1)
    )
    conn.execute(
        update(jobs)
        .where(jobs.c.job_id == job_id, jobs.c.state == JobState.RUNNING.value, ~jobs.c.cancel_requested)
        .values(cancel_requested=True, status_text="cancelling", status_version=jobs.c.status_version + 1)
    )
    state = conn.execute(select(jobs.c.state).where(jobs.c.job_id == job_id)).scalar()
    return None if state is None else JobState(state)


def finish(
    conn: Connection,
    job_id: str,
    runner: str,
    state: JobState,
    now: datetime,
    *,
    result: Any = None,
    error: JobError | None = None,
) -> bool:
    assert state in FINISHED
    changed = conn.execute(
        update(jobs)
        .where(_held(job_id, runner))
        .values(
            state=state.value,
            finished_at=now,
            lease_until=None,
            result=None if result is None else json.dumps(result),
            error_message=None if error is None else error.message,
            error_details=None if error is None else error.details,
            status_version=jobs.c.status_version + 1,
        )
    ).rowcount
    return bool(changed)


def stale(conn: Connection, now: datetime, limit: int) -> list[Job]:
    """Running jobs whose runner's lease ran out (its process stopped), locked on PostgreSQL."""
    stmt = (
        select(jobs)
        .where(jobs.c.state == JobState.RUNNING.value, jobs.c.lease_until < now)
        .order_by(jobs.c.lease_until)
        .limit(limit)
    )
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    return [_job(row) for row in conn.execute(stmt)]


def requeue(conn: Connection, job_id: str, text: str) -> None:
    """A stale job back in the queue, to resume from its checkpoint."""
    conn.execute(
        update(jobs)
        .where(jobs.c.job_id == job_id, jobs.c.state == JobState.RUNNING.value)
        .values(
            state=JobState.QUEUED.value,
            claimed_by="",
            lease_until=None,
            status_text=text,
            status_version=jobs.c.status_version + 1,
        )
    )


def fail_stale(conn: Connection, job_id: str, now: datetime, error: JobError) -> None:
    conn.execute(
        update(jobs)
        .where(jobs.c.job_id == job_id, jobs.c.state == JobState.RUNNING.value)
        .values(
            state=JobState.FAILED.value,
            finished_at=now,
            lease_until=None,
            error_message=error.message,
            error_details=error.details,
            status_version=jobs.c.status_version + 1,
        )
    )


def forget_finished(conn: Connection, before: datetime) -> int:
    """Remove jobs (and, by cascade, their log) that finished before ``before``."""
    old = select(jobs.c.job_id).where(jobs.c.finished_at < before)
    conn.execute(delete(job_log).where(job_log.c.job_id.in_(old)))  # SQLite's cascade needs the pragma
    return conn.execute(delete(jobs).where(jobs.c.finished_at < before)).rowcount


def _held(job_id: str, runner: str) -> Any:
    return and_(jobs.c.job_id == job_id, jobs.c.claimed_by == runner, jobs.c.state == JobState.RUNNING.value)


# -- periodic schedules ------------------------------------------------------------------------------


def ensure_schedule(conn: Connection, name: str, first_run: datetime) -> None:
    exists = conn.execute(select(job_schedules.c.name).where(job_schedules.c.name == name)).first()
    if exists is None:
        conn.execute(
            insert(job_schedules).values(
                name=name,
                next_run_at=first_run,
                last_outcome="",
                last_error="",
                last_result="",
                last_runner="",
            )
        )


def claim_schedule(conn: Connection, name: str, runner: str, now: datetime, next_run: datetime) -> bool:
    """Take this period's run of ``name``: True for exactly one caller however many race."""
    changed = conn.execute(
        update(job_schedules)
        .where(job_schedules.c.name == name, job_schedules.c.next_run_at <= now)
        .values(next_run_at=next_run, last_started_at=now, last_runner=runner)
    ).rowcount
    return bool(changed)


def record_schedule_outcome(
    conn: Connection, name: str, now: datetime, *, result: Any = None, error: str = ""
) -> None:
    conn.execute(
        update(job_schedules)
        .where(job_schedules.c.name == name)
        .values(
            last_finished_at=now,
            last_outcome="failed" if error else "succeeded",
            last_error=error,
            last_result="" if result is None else json.dumps(result),
        )
    )


def schedules(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(job_schedules).order_by(job_schedules.c.name))
    return [dict(row._mapping) for row in rows]
