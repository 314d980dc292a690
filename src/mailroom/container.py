"""Builds the engine, payload store, clock and services once; passed down, never global."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

from mailroom.clock import Clock, SystemClock
from mailroom.services.admin_api import AdminApi
from mailroom.services.admin_functions import AdminServices, build_registry
from mailroom.services.admin_users import AdminUserService, FailureTracker
from mailroom.services.api_tokens import ApiTokenService
from mailroom.services.authentication import AuthenticationService
from mailroom.services.jobs import JobKind, JobRunner, JobService, Periodic, RunnerSettings
from mailroom.services.mailbox_cache import MailboxCache
from mailroom.services.mailboxes import MailboxService
from mailroom.services.maintenance import MaintenanceService
from mailroom.services.messaging import MessagingService
from mailroom.services.receipts import ReceiptSigner
from mailroom.services.receiving import ReceivingService
from mailroom.services.sandbox import SandboxService
from mailroom.services.sending import SendingService
from mailroom.services.tracking import TrackingService
from mailroom.settings import PayloadBackend, Settings, SettingsError
from mailroom.storage.db import Database, create_database
from mailroom.storage.migrate import upgrade
from mailroom.storage.payloads import PayloadStore
from mailroom.storage.payloads.factory import create_payload_store
from mailroom.storage.private import make_private_dir


@dataclass
class Container:
    settings: Settings
    db: Database
    payloads: PayloadStore
    clock: Clock
    auth: AuthenticationService
    mailboxes: MailboxService
    sending: SendingService
    receiving: ReceivingService
    tracking: TrackingService
    maintenance: MaintenanceService
    sandbox: SandboxService
    jobs: JobService
    admin_users: AdminUserService
    admin: AdminApi
    messaging: MessagingService
    api_tokens: ApiTokenService

    def job_runner(self) -> JobRunner:
        """A runner for this process: the jobs of ``self.jobs`` and the periodic maintenance."""
        settings = self.settings
        periodic = [
            *self.maintenance.periodic(),
            Periodic(
                "jobs.forget-finished",
                min(settings.job_retention, timedelta(hours=1)),
                lambda: {"forgotten": self.jobs.forget_finished(settings.job_retention)},
            ),
            Periodic(
                "audit.forget",
                min(settings.audit_retention, timedelta(hours=1)),
                lambda: {"forgotten": self.admin.forget_audit(settings.audit_retention)},
            ),
            Periodic(
                "api-tokens.forget-expired",
                timedelta(hours=1),
                lambda: {"forgotten": self.api_tokens.forget_expired(self.clock.now())},
            ),
        ]
        runner_settings = RunnerSettings(
            threads=settings.job_threads,
            lease=settings.job_lease,
            poll=settings.job_poll_interval,
            retention=settings.job_retention,
        )
        return JobRunner(self.jobs, self.db, self.clock, runner_settings, periodic)

    def close(self) -> None:
        self.db.dispose()


def resolve_shared_key(settings: Settings) -> str:
    """The configured key, or one generated once into the data directory (mode 0600)."""
    if settings.shared_key:
        return settings.shared_key
    path = settings.data_dir / "shared.key"
    if not path.exists():
        make_private_dir(settings.data_dir)
        _create_private(path, secrets.token_urlsafe(32))
    key = path.read_text().strip()
    if not key:  # never sign with an empty key: anyone could then make valid tokens
        raise SettingsError(f"{path} is empty: delete it to generate a new key, or set MAILROOM_SHARED_KEY")
    return key


def _create_private(path: Path, text: str) -> None:
    """Create ``path`` holding ``text``, durably and whole, unless it exists already.

    The text is written and fsynced under a temporary name, then linked into place (which fails
    if another process got there first), so no reader ever sees a missing or partial key.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError:  # a filesystem without hard links: still never partial
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def where_things_are(settings: Settings) -> list[str]:
    """Where these settings keep things, a line each (``serve`` prints them): the database (its
    URL without the password), the payload store, the shared key's source and, only when
    something is kept in it, the data directory."""
    data_dir = settings.data_dir.resolve()
    url = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    kept = [
        name
        for name, here in (
            ("database", not settings.database_url),
            ("payloads", settings.payload_store == PayloadBackend.FILESYSTEM),
            ("shared key", not settings.shared_key),
        )
        if here
    ]
    key = "MAILROOM_SHARED_KEY" if settings.shared_key else str(data_dir / "shared.key")
    lines = [
        f"database: {url}",
        f"payloads: {_payload_store_text(settings)}",
        f"shared key (the NHSMESH HMAC key clients need) from {key}",
    ]
    if kept:
        lines.append(f"data directory: {data_dir} ({', '.join(kept)})")
    return lines


def _payload_store_text(settings: Settings) -> str:
    if settings.payload_store != PayloadBackend.S3:
        return f"files under {settings.data_dir.resolve() / 'payloads'}"
    text = f"S3 bucket {settings.s3_bucket}"
    if settings.s3_prefix:
        text += f", prefix {settings.s3_prefix}"
    if settings.s3_endpoint_url:
        text += f" at {settings.s3_endpoint_url}"
    return text


def open_database(settings: Settings) -> Database:
    """The metadata database the settings name (not migrated)."""
    return create_database(
        settings.resolved_database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )


def build_container(
    settings: Settings,
    *,
    clock: Clock | None = None,
    payloads: PayloadStore | None = None,
    migrate: bool = True,
    job_kinds: Mapping[str, JobKind] | None = None,
) -> Container:
    # The data directory is made (mode 0700) only by what keeps something in it: the SQLite
    # database (storage.db), the payload files (payloads.filesystem) and the generated key.
    clock = clock or SystemClock()
    db = open_database(settings)
    if migrate:
        upgrade(db)
    store = payloads or create_payload_store(settings)
    mailbox_cache = MailboxCache(db, clock, settings.mailbox_cache_ttl)
    maintenance = MaintenanceService(settings, db, store, clock)
    api_failures = FailureTracker(settings.api_lockout_failures, settings.api_lockout_time)
    api_tokens = ApiTokenService(settings, db, clock, api_failures)
    # a changed password or a removal ends the mailbox's JSON API logins in the same transaction
    mailbox_service = MailboxService(db, store, clock, mailbox_cache, api_tokens)
    kinds = dict(job_kinds or {})
    jobs = JobService(db, clock, kinds)
    failures = FailureTracker(settings.admin_lockout_failures, settings.admin_lockout_time)
    admin_users = AdminUserService(db, clock, failures)
    registry = build_registry(
        AdminServices(
            settings,
            db,
            clock,
            mailbox_service,
            maintenance,
            jobs,
            admin_users,
            clock.now(),
            payloads=store,
            api_tokens=api_tokens,
        )
    )
    kinds.update(registry.job_kinds())  # the same mapping the job service reads
    return Container(
        settings=settings,
        db=db,
        payloads=store,
        clock=clock,
        auth=AuthenticationService(settings, mailbox_cache, db, clock, resolve_shared_key(settings)),
        mailboxes=mailbox_service,
        sending=SendingService(settings, db, store, clock, mailbox_cache),
        receiving=ReceivingService(settings, db, store, clock),
        tracking=TrackingService(db),
        maintenance=maintenance,
        sandbox=SandboxService(db, store, clock),
        jobs=jobs,
        admin_users=admin_users,
        admin=AdminApi(registry, jobs, db, clock),
        messaging=MessagingService(
            settings, db, store, clock, mailbox_cache, ReceiptSigner(settings, db, clock)
        ),
        api_tokens=api_tokens,
    )
