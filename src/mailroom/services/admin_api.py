"""The administration API's functions, invoked by name: one registry that dispatches calls and
describes itself (``get-metadata``), argument conversion, privileges and the audit log.

No HTTP here: ``web/admin`` turns requests into ``AdminApi`` calls and outcomes into MailStore's
envelope. A long function is a job kind of the job runner (``services.jobs``): invoking it
queues a job, and the caller follows it by the job's id.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mailroom.clock import Clock
from mailroom.domain.admin import AdminUser, ArgType, AuditEntry, Privilege
from mailroom.domain.jobs import Job
from mailroom.errors import MailroomError, NotFound, PermissionDenied, ValidationFailed
from mailroom.services.jobs import JobContext, JobKind, JobService
from mailroom.storage.db import Database
from mailroom.storage.repos import admin as repo

#: Arguments a call may pass at most, and the longest string value.
MAX_ARGUMENTS = 64
MAX_STRING = 64 * 1024
#: Shown instead of a secret argument's value in the audit log.
REDACTED = "[redacted]"


class UnknownFunction(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown function: {name[:100]}")


@dataclass(frozen=True)
class Arg:
    name: str
    type: ArgType
    description: str
    optional: bool = False
    nullable: bool = False
    default: Any = None
    secret: bool = False  # never in the audit log or a log line
    #: For numbers: the smallest and largest value accepted.
    minimum: float | None = None
    maximum: float | None = None
    #: For numbers: only whole numbers (``10`` or ``10.0``, not ``1.5``).
    whole: bool = True

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.value,
            "nullable": self.nullable,
            "optional": self.optional,
            "description": self.description,
        }


@dataclass(frozen=True)
class Call:
    """One invocation: who called, from where, with which (converted) arguments."""

    user: AdminUser
    client: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Function:
    name: str
    description: str
    privilege: Privilege
    args: tuple[Arg, ...] = ()
    #: A function that answers at once: ``run(call)`` returns the result.
    run: Callable[[Call], Any] | None = None
    #: A long function: a job of this kind is queued; ``job(context)`` runs it.
    job: Callable[[JobContext], Any] | None = None
    resumable: bool = False
    #: For a long function: checks the call before a job is queued and gives the job's
    #: arguments (what it refuses fails the call, and no job is made).
    prepare: Callable[[Call], dict[str, Any]] | None = None
    group: str = ""

    @property
    def long(self) -> bool:
        return self.job is not None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "description": self.description,
            "privilege": self.privilege.value,
            "longRunning": self.long,
            "args": [arg.describe() for arg in self.args],
        }


@dataclass(frozen=True)
class Answered:
    result: Any


@dataclass(frozen=True)
class Started:
    job: Job


@dataclass(frozen=True)
class Failed:
    """The function ran and refused or failed (a mailbox that does not exist, say)."""

    error: MailroomError


Outcome = Answered | Started | Failed


@dataclass
class Registry:
    functions: dict[str, Function] = field(default_factory=dict)

    def add(self, function: Function) -> None:
        assert function.name not in self.functions, function.name
        assert (function.run is None) != (function.job is None), function.name
        self.functions[function.name] = function

    def job_kinds(self) -> dict[str, JobKind]:
        return {
            f.name: JobKind(f.name, f.job, resumable=f.resumable)
            for f in self.functions.values()
            if f.job is not None
        }

    def get(self, name: str) -> Function:
        function = self.functions.get(name)
        if function is None:
            raise UnknownFunction(name)
        return function


def convert(function: Function, raw: Mapping[str, Any], *, from_form: bool) -> dict[str, Any]:
    """The arguments of a call, each checked against its declaration and converted.

    From a form every value is text: numbers and booleans as JSON writes them (``10``, ``true``),
    ``json`` arguments as JSON text (MailStore's convention). From a JSON body values are typed
    as JSON types them (a ``json`` argument is any value)."""
    if len(raw) > MAX_ARGUMENTS:
        raise ValidationFailed("body", "arguments", f"at most {MAX_ARGUMENTS} arguments")
    declared = {arg.name: arg for arg in function.args}
    unknown = sorted(set(raw) - set(declared))
    if unknown:
        raise ValidationFailed(
            "body",
            unknown[0],
            f"{function.name} has no argument {unknown[0][:100]!r}",
            kind="extra_forbidden",
        )
    values: dict[str, Any] = {}
    for arg in function.args:
        if arg.name not in raw:
            if not arg.optional:
                raise ValidationFailed("body", arg.name, f"argument {arg.name!r} is required", kind="missing")
            values[arg.name] = arg.default
            continue
        values[arg.name] = _value(arg, raw[arg.name], from_form)
    return values


def _value(arg: Arg, value: Any, from_form: bool) -> Any:
    if from_form and arg.type is not ArgType.STRING and isinstance(value, str):
        value = _parse_text(arg, value)
    if value is None:
        if arg.nullable:
            return None
        raise ValidationFailed("body", arg.name, f"argument {arg.name!r} must not be null")
    if arg.type is ArgType.STRING:
        if not isinstance(value, str):
            raise _wrong(arg, "a string")
        if len(value) > MAX_STRING or "\x00" in value:
            raise ValidationFailed("body", arg.name, f"argument {arg.name!r} is too long or holds a NUL")
        return value
    if arg.type is ArgType.NUMBER:
        return _number(arg, value)
    if arg.type is ArgType.BOOL:
        if not isinstance(value, bool):
            raise _wrong(arg, "true or false")
        return value
    return value  # json: any JSON value


def _parse_text(arg: Arg, text: str) -> Any:
    if arg.nullable and text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        expected = {ArgType.NUMBER: "a number", ArgType.BOOL: "true or false"}.get(arg.type, "JSON")
        raise _wrong(arg, expected) from None


def _number(arg: Arg, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _wrong(arg, "a number")
    number: int | float = value
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if arg.whole and not isinstance(number, int):
        raise _wrong(arg, "a whole number")
    if (arg.minimum is not None and number < arg.minimum) or (
        arg.maximum is not None and number > arg.maximum
    ):
        raise ValidationFailed(
            "body", arg.name, f"argument {arg.name!r} must be between {arg.minimum} and {arg.maximum}"
        )
    return number


def _wrong(arg: Arg, expected: str) -> ValidationFailed:
    return ValidationFailed("body", arg.name, f"argument {arg.name!r} must be {expected}", kind="type_error")


def redacted(function: Function | None, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments as the audit log keeps them: secrets replaced, long values cut."""
    secret = {arg.name for arg in function.args if arg.secret} if function is not None else set()
    kept: dict[str, Any] = {}
    for name, value in list(raw.items())[:MAX_ARGUMENTS]:
        if name in secret or "password" in name.lower():
            kept[name[:100]] = REDACTED
        elif isinstance(value, str):
            kept[name[:100]] = value[:200]
        else:
            text = json.dumps(value)
            kept[name[:100]] = value if len(text) <= 200 else text[:200]
    return kept


class AdminApi:
    """Invoking functions by name, as an authenticated administrator, with every call audited."""

    def __init__(self, registry: Registry, jobs: JobService, db: Database, clock: Clock) -> None:
        self.registry = registry
        self._jobs = jobs
        self._db = db
        self._clock = clock

    def catalogue(self) -> list[dict[str, Any]]:
        return [function.describe() for function in self.registry.functions.values()]

    def invoke(
        self, user: AdminUser, client: str, name: str, raw: Mapping[str, Any], *, from_form: bool
    ) -> Outcome:
        """Run (or, for a long function, queue) ``name``. What is wrong with the call itself (an
        unknown function, a missing privilege, bad arguments) raises; what the function itself
        refuses is a ``Failed`` outcome. Either way the call is audited."""
        function = self.registry.functions.get(name)
        try:
            if function is None:
                raise UnknownFunction(name)
            if not user.privilege.allows(function.privilege):
                raise PermissionDenied(f"{function.name} needs the {function.privilege.value} privilege")
            call = Call(user, client, convert(function, raw, from_form=from_form))
        except MailroomError as exc:
            self.audit(user.name, client, name, function, raw, "refused", error=exc.description)
            raise
        outcome = self._run(function, call, raw)
        if isinstance(outcome, Started):
            self.audit(user.name, client, name, function, raw, "running", job_id=outcome.job.job_id)
        elif isinstance(outcome, Failed):
            self.audit(user.name, client, name, function, raw, "failed", error=outcome.error.description)
        else:
            self.audit(user.name, client, name, function, raw, "succeeded")
        return outcome

    def _run(self, function: Function, call: Call, raw: Mapping[str, Any]) -> Outcome:
        try:
            if function.run is not None:
                return Answered(function.run(call))
            arguments = call.args if function.prepare is None else function.prepare(call)
            return Started(self._jobs.submit(function.name, arguments, owner=call.user.name))
        except MailroomError as exc:
            return Failed(exc)
        except Exception:
            self.audit(
                call.user.name, call.client, function.name, function, raw, "failed", error="internal error"
            )
            raise

    def cancel(self, user: AdminUser, client: str, token: str) -> Job:
        """Ask a job to stop: an administrator may cancel any job, a read-only one only their own
        (a job of a function they may call); audited as ``cancel-async``."""
        shown = {"token": token[:40]}
        try:
            if not user.privilege.allows(Privilege.ADMIN) and self._jobs.get(token).owner != user.name:
                self.audit(user.name, client, "cancel-async", None, shown, "refused", error="read-only")
                raise PermissionDenied("cancelling another administrator's job needs the admin privilege")
            job = self._jobs.cancel(token)
        except MailroomError as exc:
            self.audit(user.name, client, "cancel-async", None, shown, "refused", error=exc.description)
            raise
        self.audit(user.name, client, "cancel-async", None, shown, "succeeded", job_id=job.job_id)
        return job

    def refused(self, user: str, client: str, name: str, raw: Mapping[str, Any], error: str) -> None:
        """Audit a call refused before it reached a function (bad credentials, a locked-out client)."""
        self.audit(user, client, name, self.registry.functions.get(name), raw, "refused", error=error)

    def audit(
        self,
        user: str,
        client: str,
        name: str,
        function: Function | None,
        raw: Mapping[str, Any],
        outcome: str,
        *,
        error: str = "",
        job_id: str = "",
    ) -> None:
        entry = AuditEntry(
            entry_id=0,
            at=self._clock.now(),
            user=user,
            peer=client,
            function=name,
            arguments=redacted(function, raw),
            outcome=outcome,
            error=error[:2000],
            job_id=job_id,
        )
        with self._db.write() as conn:
            repo.add_audit(conn, entry)

    def forget_audit(self, retention: timedelta) -> int:
        with self._db.write() as conn:
            return repo.forget_audit(conn, self._clock.now() - retention)

    def audit_entries(self, **filters: Any) -> Sequence[AuditEntry]:
        with self._db.read() as conn:
            return repo.audit_entries(conn, **filters)
