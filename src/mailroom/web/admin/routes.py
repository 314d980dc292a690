"""``/api/invoke/<Function>``, ``/api/get-metadata``, ``/api/get-status``, ``/api/cancel-async``.

Every call authenticates an administrator (HTTP Basic), reads its arguments from a form or a
JSON object body, and is answered in MailStore's envelope; errors are rendered here, in this
face's shape, never in the MESH face's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from mailroom import errors
from mailroom.container import Container
from mailroom.domain.admin import AdminUser
from mailroom.services.admin_api import Answered, Failed
from mailroom.services.jobs import JobWatch
from mailroom.web.admin import envelope
from mailroom.web.deps import get_container

router = APIRouter(prefix="/api", include_in_schema=False)

#: Longest function name read from a path.
MAX_NAME = 100


def _client(request: Request) -> str:
    client = request.scope.get("client")
    return str(client[0]) if client else ""


async def _body(request: Request, limit: int) -> tuple[dict[str, Any], bool]:
    """The arguments, and whether they came from a form (text values) rather than JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.PayloadTooLarge(f"the body is larger than {limit} bytes")
    data = bytearray()
    try:
        async for piece in request.stream():
            data += piece
            if len(data) > limit:
                raise errors.PayloadTooLarge(f"the body is larger than {limit} bytes")
    except ClientDisconnect:  # nobody will read the answer; no traceback for it either
        raise envelope.BadBody("The client went away before its body ended") from None
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not data.strip():
        return {}, True
    if media == "application/json" or (not media and data.lstrip()[:1] == b"{"):
        return _json_object(bytes(data)), False
    if media in ("application/x-www-form-urlencoded", ""):
        return _form(bytes(data)), True
    raise errors.UnsupportedEncoding(f"send arguments as a form or a JSON object, not {media[:100]}")


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise envelope.BadBody("The body is not valid JSON") from None
    if not isinstance(value, dict):
        raise envelope.BadBody("The JSON body must be an object of arguments")
    return value


def _form(data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise envelope.BadBody("The body is not a valid form (application/x-www-form-urlencoded)") from None
    values: dict[str, Any] = {}
    for name, value in pairs:
        if name in values:
            raise envelope.BadBody(f"argument {name[:100]!r} is given twice")
        values[name] = value
    return values


async def _login(request: Request, services: Container, function: str, raw: Mapping[str, Any]) -> AdminUser:
    client = _client(request)
    try:
        name, password = envelope.basic_credentials(request.headers.get("authorization"))
    except errors.CredentialsRefused as exc:
        await anyio.to_thread.run_sync(services.admin.refused, "", client, function, raw, exc.description)
        raise
    try:
        return await anyio.to_thread.run_sync(services.admin_users.authenticate, name, password, client)
    except (errors.CredentialsRefused, errors.TooManyAttempts) as exc:
        await anyio.to_thread.run_sync(services.admin.refused, name, client, function, raw, exc.description)
        raise


async def _arguments(request: Request, services: Container, function: str) -> tuple[dict[str, Any], bool]:
    """The call's arguments; a body that cannot be read is refused, and audited under the user
    name it claims (unchecked: the credentials are not looked at for a call refused anyway)."""
    try:
        return await _body(request, services.settings.admin_max_body_bytes)
    except errors.MailroomError as exc:
        claimed = ""
        with contextlib.suppress(errors.CredentialsRefused):
            claimed = envelope.basic_credentials(request.headers.get("authorization"))[0]
        await anyio.to_thread.run_sync(
            services.admin.refused, claimed, _client(request), function, {}, exc.description
        )
        raise


@router.post("/invoke/{function}")
async def invoke(request: Request, function: str) -> JSONResponse:
    services = get_container(request)
    name = function[:MAX_NAME]
    try:
        raw, from_form = await _arguments(request, services, name)
        user = await _login(request, services, name, raw)
        outcome = await anyio.to_thread.run_sync(
            lambda: services.admin.invoke(user, _client(request), name, raw, from_form=from_form)
        )
    except Exception as exc:
        return envelope.refused(exc)
    if isinstance(outcome, Answered):
        return envelope.answered(outcome.result)
    if isinstance(outcome, Failed):
        return envelope.failed(outcome.error)
    return envelope.respond(envelope.job_envelope(outcome.job, []))


@router.api_route("/get-metadata", methods=["GET", "POST"])
async def get_metadata(request: Request) -> JSONResponse:
    services = get_container(request)
    try:
        raw, _ = await _arguments(request, services, "get-metadata")
        await _login(request, services, "get-metadata", raw)
    except Exception as exc:
        return envelope.refused(exc)
    return envelope.answered(services.admin.catalogue())


def _whole(raw: Mapping[str, Any], name: str, default: int, maximum: int) -> int:
    value = raw.get(name, default)
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            raise errors.ValidationFailed(
                "body", name, f"{name} must be a whole number 0-{maximum}", value=value[:40]
            )
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise errors.ValidationFailed("body", name, f"{name} must be a whole number 0-{maximum}")
    return value


def _token(raw: Mapping[str, Any]) -> str:
    token = raw.get("token")
    if not isinstance(token, str) or not token:
        raise errors.ValidationFailed("body", "token", "token is required")
    return token


def _watch(request: Request, services: Container) -> JobWatch:
    watch: JobWatch | None = getattr(request.app.state, "job_watch", None)
    if watch is None:
        watch = JobWatch(services.jobs, services.settings.job_poll_interval, asyncio.get_running_loop())
        request.app.state.job_watch = watch
    return watch


@router.post("/get-status")
async def get_status(request: Request) -> JSONResponse:
    services = get_container(request)
    try:
        raw, _ = await _arguments(request, services, "get-status")
        await _login(request, services, "get-status", raw)
        token = _token(raw)
        known = _whole(raw, "lastKnownStatusVersion", 0, 2**62)
        cap = int(services.settings.admin_status_wait_max.total_seconds() * 1000)
        timeout = min(_whole(raw, "millisecondsTimeout", 0, 2**31), cap)
        status = await anyio.to_thread.run_sync(services.jobs.status, token, known)
        if status.job.status_version <= known and not status.job.state.finished and timeout > 0:
            await _watch(request, services).wait(token, known, timeout / 1000)
            status = await anyio.to_thread.run_sync(services.jobs.status, token, known)
    except Exception as exc:
        return envelope.refused(exc)
    return envelope.job_status(status)


@router.post("/cancel-async")
async def cancel_async(request: Request) -> JSONResponse:
    services = get_container(request)
    try:
        raw, _ = await _arguments(request, services, "cancel-async")
        user = await _login(request, services, "cancel-async", raw)
        token = _token(raw)
        await anyio.to_thread.run_sync(services.admin.cancel, user, _client(request), token)
        status = await anyio.to_thread.run_sync(services.jobs.status, token, 0)
    except Exception as exc:
        return envelope.refused(exc)
    return envelope.job_status(status)


ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


# ``/api`` itself too: without it, Starlette would answer it with a redirect to ``/api/``
# (an answer that is not the envelope).
@router.api_route("", methods=ALL_METHODS)
@router.api_route("/{rest:path}", methods=ALL_METHODS)
async def unknown(rest: str = "") -> JSONResponse:
    return envelope.respond(envelope.error_body("Not found", f"no such API route: /api/{rest[:200]}"), 404)
