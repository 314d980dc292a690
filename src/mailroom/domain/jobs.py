"""Jobs: work that outlives a request, recorded as a row, claimed by one process, polled by id.

A job moves ``queued → running → succeeded | failed | cancelled``; every change to what a
poller sees (state, progress, status text, a log line) raises its ``status_version`` by one,
so a poller that knows version *n* can wait for *n + 1* and be given only what is new.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

#: Job ids are 32 hex digits (128 random bits), as MailStore's tokens look.
JOB_ID_LENGTH = 32


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


def new_job_id() -> str:
    return secrets.token_hex(JOB_ID_LENGTH // 2)


def valid_job_id(text: str) -> bool:
    return len(text) == JOB_ID_LENGTH and all(c in "0123456789abcdef" for c in text)


@dataclass(frozen=True)
class JobError:
    message: str
    details: str = ""


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: str
    arguments: dict[str, Any]
    owner: str
    state: JobState
    status_version: int
    percent: int | None
    status_text: str | None
    result: Any
    error: JobError | None
    cancel_requested: bool
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    checkpoint: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobLogLine:
    status_version: int
    text: str
