"""The administration API's functions, over the services the MESH face uses.

Each is declared once here (name, description, privilege, arguments); ``get-metadata`` and
``docs/admin-api.md`` are generated from these declarations, and calls are dispatched by them.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailroom import __version__
from mailroom.clock import Clock
from mailroom.domain.admin import AdminUser, ArgType, Privilege
from mailroom.domain.jobs import Job, JobState
from mailroom.domain.mailboxes import Mailbox, normalise_mailbox_id
from mailroom.errors import ValidationFailed
from mailroom.services.admin_api import Arg, Call, Function, Registry
from mailroom.services.admin_api_keys import api_key_functions
from mailroom.services.admin_messages import (
    MessageAdmin,
    iso,
    message_functions,
    parse_time,
    workflow_functions,
)
from mailroom.services.admin_users import AdminUserService
from mailroom.services.api_tokens import ApiTokenService
from mailroom.services.export import MailboxExporter, export_functions
from mailroom.services.jobs import JobContext, JobService
from mailroom.services.mailboxes import MailboxChanges, MailboxService, describe_held
from mailroom.services.maintenance import MaintenanceService
from mailroom.services.verify_store import verify_functions
from mailroom.settings import Settings
from mailroom.storage.db import Database
from mailroom.storage.payloads import PayloadStore
from mailroom.storage.repos import admin as admin_repo
from mailroom.storage.repos import statistics

READ, ADMIN = Privilege.READ, Privilege.ADMIN
S, N, B, J = ArgType.STRING, ArgType.NUMBER, ArgType.BOOL, ArgType.JSON

OFFSET = Arg("offset", N, "Entries to skip (paging).", optional=True, default=0, minimum=0, maximum=10**9)
LIMIT = Arg(
    "limit", N, "Entries to return at most (1-1000).", optional=True, default=100, minimum=1, maximum=1000
)
MAILBOX_ID = Arg("mailboxId", S, "The mailbox id (upper-cased, as the MESH face does).")


def optional(name: str, kind: ArgType, description: str) -> Arg:
    """An argument that may be left out or given as null (an empty form value)."""
    return Arg(name, kind, description, optional=True, nullable=True, default=None)


@dataclass(frozen=True)
class AdminServices:
    """What the functions work with: the same services the MESH face and the CLI use."""

    settings: Settings
    db: Database
    clock: Clock
    mailboxes: MailboxService
    maintenance: MaintenanceService
    jobs: JobService
    users: AdminUserService
    started_at: datetime
    payloads: PayloadStore
    api_tokens: ApiTokenService


def build_registry(services: AdminServices) -> Registry:
    s = services
    messages = MessageAdmin(s.settings, s.db, s.payloads, s.clock)
    exporter = MailboxExporter(s.settings.resolved_export_dir, s.db, s.payloads, messages, s.clock)
    registry = Registry()
    for function in (
        *_server_functions(s),
        *_mailbox_functions(s),
        *api_key_functions(s.api_tokens),
        *workflow_functions(s.mailboxes),
        *message_functions(messages),
        *export_functions(exporter),
        *_maintenance_functions(s),
        *verify_functions(s.db, s.payloads),
        *_admin_functions(s),
    ):
        registry.add(function)
    return registry


def mailbox_id(call: Call, name: str = "mailboxId") -> str:
    raw = call.args[name]
    normal = normalise_mailbox_id(raw)
    if normal is None:
        raise ValidationFailed("body", name, "a mailbox id is 1-100 letters, digits, _ or -", value=raw[:100])
    return normal


# -- server ----------------------------------------------------------------------------------------


def _server_functions(s: AdminServices) -> list[Function]:
    def server_info(call: Call) -> dict[str, Any]:
        with s.db.read() as conn:
            counts = statistics.counts(conn)
        return {
            "version": __version__,
            "machineName": platform.node(),
            "startTime": iso(s.started_at),
            "database": s.db.engine.dialect.name,
            "payloadStore": s.settings.payload_store.value,
            "settings": {
                "inboxRetention": s.settings.inbox_retention.total_seconds(),
                "payloadRetention": s.settings.payload_retention.total_seconds(),
                "maxChunkBytes": s.settings.max_chunk_bytes,
                "maxMessageBytes": s.settings.max_message_bytes,
                "authCheckClock": s.settings.auth_check_clock,
                "singleUseTokens": s.settings.auth_single_use_tokens,
                "sandbox": s.settings.sandbox,
            },
            "counts": counts,
        }

    def stats(call: Call) -> dict[str, Any]:
        with s.db.read() as conn:
            return statistics.statistics(conn, s.clock.now())

    return [
        Function(
            "GetServerInfo",
            "Version, machine name, start time, database and payload-store kinds, the settings that "
            "shape the exchange, and counts of mailboxes and messages.",
            READ,
            run=server_info,
            group="Server",
        ),
        Function(
            "GetStatistics",
            "Messages by status and by mailbox (waiting, sent), bytes of payload stored, and the age "
            "in seconds of each mailbox's oldest unacknowledged message.",
            READ,
            run=stats,
            group="Server",
        ),
    ]


# -- mailboxes -------------------------------------------------------------------------------------


def mailbox_record(box: Mailbox, waiting: int | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "mailboxId": box.mailbox_id,
        "name": box.mailbox_name,
        "odsCode": box.ods_code,
        "orgCode": box.org_code,
        "orgName": box.org_name,
        "billingEntity": box.billing_entity,
        "enabled": box.active,
        "lastHandshake": iso(box.last_handshake_at),
    }
    if waiting is not None:
        record["waiting"] = waiting
    return record


def _mailbox_functions(s: AdminServices) -> list[Function]:
    def get_mailboxes(call: Call) -> dict[str, Any]:
        text = (call.args["filter"] or "").upper()
        boxes = [
            summary
            for summary in s.mailboxes.summaries()
            if not text or text in summary.mailbox.mailbox_id or text in summary.mailbox.mailbox_name.upper()
        ]
        page = boxes[call.args["offset"] : call.args["offset"] + call.args["limit"]]
        return {"total": len(boxes), "mailboxes": [mailbox_record(b.mailbox, b.waiting) for b in page]}

    def get_mailbox(call: Call) -> dict[str, Any]:
        box_id = mailbox_id(call)
        box = s.mailboxes.get(box_id)
        held = s.mailboxes.held(box_id)
        return {**mailbox_record(box), "held": describe_held(held)}

    def create_mailbox(call: Call) -> dict[str, Any]:
        box = Mailbox(
            mailbox_id=mailbox_id(call),
            mailbox_name=call.args["name"] or "",
            password=_mailbox_password(call.args["password"]),
            ods_code=call.args["odsCode"] or "",
            org_code=call.args["orgCode"] or "",
            org_name=call.args["orgName"] or "",
            billing_entity=call.args["billingEntity"] or "",
        )
        s.mailboxes.add(box)
        return mailbox_record(s.mailboxes.get(box.mailbox_id))

    def set_password(call: Call) -> None:
        s.mailboxes.set_password(mailbox_id(call), _mailbox_password(call.args["password"]))

    def set_enabled(call: Call) -> dict[str, Any]:
        return mailbox_record(
            s.mailboxes.update(mailbox_id(call), MailboxChanges(active=call.args["enabled"]))
        )

    def delete_mailbox(call: Call) -> dict[str, Any]:
        removal = s.mailboxes.remove(mailbox_id(call), purge=call.args["purge"])
        return {
            "messagesDeleted": len(removal.deleted),
            "registrationsRemoved": removal.registrations,
            "sentStillWaiting": removal.sent_waiting,
            "payloadsLeft": removal.payloads_left,
        }

    return [
        Function(
            "GetMailboxes",
            "Mailboxes with their details and the number of messages waiting in each inbox, by id; "
            "`filter` keeps those whose id or name contains it.",
            READ,
            (optional("filter", S, "Text the id or name must contain."), OFFSET, LIMIT),
            run=get_mailboxes,
            group="Mailboxes",
        ),
        Function(
            "GetMailboxInfo",
            "One mailbox: its details, last handshake and what it holds (messages waiting, sent).",
            READ,
            (MAILBOX_ID,),
            run=get_mailbox,
            group="Mailboxes",
        ),
        Function(
            "CreateMailbox",
            "Create a mailbox; it works on the MESH face at once. Refused if it exists.",
            ADMIN,
            (
                MAILBOX_ID,
                Arg("password", S, "The mailbox's MESH password.", secret=True),
                optional("name", S, "Display name."),
                optional("odsCode", S, "ODS code (endpoint lookup)."),
                optional("orgCode", S, "Organisation code."),
                optional("orgName", S, "Organisation name."),
                optional("billingEntity", S, "Billing entity."),
            ),
            run=create_mailbox,
            group="Mailboxes",
        ),
        Function(
            "SetMailboxPassword",
            "Change a mailbox's MESH password (running servers see it within the mailbox cache TTL); "
            "its JSON API password logins end (API keys and their logins stay).",
            ADMIN,
            (MAILBOX_ID, Arg("password", S, "The new password.", secret=True)),
            run=set_password,
            group="Mailboxes",
        ),
        Function(
            "SetMailboxEnabled",
            "Enable or disable a mailbox: a disabled mailbox cannot log in, and messages to it fail.",
            ADMIN,
            (MAILBOX_ID, Arg("enabled", B, "true to enable, false to disable.")),
            run=set_enabled,
            group="Mailboxes",
        ),
        Function(
            "DeleteMailbox",
            "Delete a mailbox and its workflow registrations. Refused while messages wait in its "
            "inbox or its uploads are unfinished, unless `purge` is true, which deletes them and "
            "their payloads first. Its JSON API logins and API keys are revoked.",
            ADMIN,
            (MAILBOX_ID, Arg("purge", B, "Delete its messages too.", optional=True, default=False)),
            run=delete_mailbox,
            group="Mailboxes",
        ),
    ]


def _mailbox_password(password: str) -> str:
    if not password or len(password) > 500:
        raise ValidationFailed("body", "password", "a mailbox password has 1-500 characters")
    return password


# -- maintenance -----------------------------------------------------------------------------------


def _maintenance_functions(s: AdminServices) -> list[Function]:
    def purge_expired(context: JobContext) -> dict[str, int]:
        context.log("Expiring messages past their inbox retention...")
        result = s.maintenance.sweep(orphans=bool(context.arguments["orphans"]))
        summary = result.summary()
        context.log(", ".join(f"{name} {count}" for name, count in summary.items()))
        return summary

    return [
        Function(
            "PurgeExpired",
            "Run the maintenance steps now: expire messages past their inbox retention (with their "
            "non-delivery reports), fail abandoned uploads, purge payloads past their retention, "
            "forget spent tokens, and (with `orphans`) remove payloads that have no message.",
            ADMIN,
            (Arg("orphans", B, "Also walk the payload store for orphans.", optional=True, default=False),),
            job=purge_expired,
            group="Maintenance",
        ),
    ]


# -- administration --------------------------------------------------------------------------------


def user_record(user: AdminUser) -> dict[str, Any]:
    return {
        "userName": user.name,
        "privilege": user.privilege.value,
        "created": iso(user.created_at),
        "passwordChanged": iso(user.password_changed_at),
    }


def job_record(job: Job) -> dict[str, Any]:
    return {
        "token": job.job_id,
        "function": job.kind,
        "owner": job.owner,
        "state": job.state.value,
        "percentProgress": job.percent,
        "statusText": job.status_text,
        "created": iso(job.created_at),
        "started": iso(job.started_at),
        "finished": iso(job.finished_at),
        "attempts": job.attempts,
        "error": None if job.error is None else {"message": job.error.message, "details": job.error.details},
    }


def _privilege(text: str) -> Privilege:
    try:
        return Privilege(text)
    except ValueError:
        raise ValidationFailed("body", "privilege", "privilege is admin or read", value=text[:20]) from None


def _state(text: str | None) -> list[JobState]:
    if not text:
        return []
    try:
        return [JobState(text)]
    except ValueError:
        states = ", ".join(state.value for state in JobState)
        raise ValidationFailed("body", "state", f"state is one of {states}", value=text[:20]) from None


def _when(call: Call, name: str) -> datetime | None:
    return parse_time(call.args[name], name)


def _admin_functions(s: AdminServices) -> list[Function]:
    def get_users(call: Call) -> list[dict[str, Any]]:
        return [user_record(user) for user in s.users.all()]

    def create_user(call: Call) -> dict[str, Any]:
        return user_record(
            s.users.add(call.args["userName"], call.args["password"], _privilege(call.args["privilege"]))
        )

    def set_user_password(call: Call) -> None:
        s.users.set_password(call.args["userName"], call.args["password"])

    def delete_user(call: Call) -> None:
        s.users.remove(call.args["userName"])

    def get_jobs(call: Call) -> list[dict[str, Any]]:
        jobs = s.jobs.recent(
            states=_state(call.args["state"]),
            kind=call.args["function"] or "",
            limit=call.args["limit"],
            offset=call.args["offset"],
        )
        return [job_record(job) for job in jobs]

    def get_audit_log(call: Call) -> list[dict[str, Any]]:
        with s.db.read() as conn:
            entries = admin_repo.audit_entries(
                conn,
                user=call.args["userName"] or "",
                function=call.args["function"] or "",
                since=_when(call, "from"),
                until=_when(call, "to"),
                limit=call.args["limit"],
                offset=call.args["offset"],
            )
        return [
            {
                "time": iso(entry.at),
                "userName": entry.user,
                "client": entry.peer,
                "function": entry.function,
                "arguments": entry.arguments,
                "outcome": entry.outcome,
                "error": entry.error or None,
                "token": entry.job_id or None,
            }
            for entry in entries
        ]

    user_name = Arg("userName", S, "The administrator's name.")
    return [
        Function(
            "GetAdminUsers",
            "Administrators and their privileges.",
            READ,
            run=get_users,
            group="Administration",
        ),
        Function(
            "CreateAdminUser",
            "Add an administrator: `admin` may call every function, `read` only those that change nothing.",
            ADMIN,
            (
                user_name,
                Arg("password", S, "At least 8 characters; stored as an argon2id hash.", secret=True),
                Arg("privilege", S, "admin or read.", optional=True, default="admin"),
            ),
            run=create_user,
            group="Administration",
        ),
        Function(
            "SetAdminUserPassword",
            "Change an administrator's password.",
            ADMIN,
            (user_name, Arg("password", S, "At least 8 characters.", secret=True)),
            run=set_user_password,
            group="Administration",
        ),
        Function(
            "DeleteAdminUser",
            "Remove an administrator (never the last one with the admin privilege).",
            ADMIN,
            (user_name,),
            run=delete_user,
            group="Administration",
        ),
        Function(
            "GetJobs",
            "Recent jobs, newest first: their function, state, progress, who started them and when.",
            READ,
            (
                optional(
                    "state", S, "Only jobs in this state (queued, running, succeeded, failed, cancelled)."
                ),
                optional("function", S, "Only jobs of this function."),
                OFFSET,
                LIMIT,
            ),
            run=get_jobs,
            group="Administration",
        ),
        Function(
            "GetAuditLog",
            "Calls made to this API, newest first: who, from where, which function with which "
            "arguments (secrets removed), the outcome and when.",
            READ,
            (
                optional("userName", S, "Only calls by this administrator."),
                optional("function", S, "Only calls of this function."),
                optional("from", S, "Only calls at or after this ISO 8601 time."),
                optional("to", S, "Only calls before this ISO 8601 time."),
                OFFSET,
                LIMIT,
            ),
            run=get_audit_log,
            group="Administration",
        ),
    ]
