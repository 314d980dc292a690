"""MailStore's answer envelope, and the one error tree rendered in it (this face's error shape)."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from typing import Any

from fastapi.responses import JSONResponse

from mailroom import errors
from mailroom.domain.jobs import Job
from mailroom.services.jobs import JobStatus

log = logging.getLogger(__name__)

#: The seed's headers: nothing here may be cached by anyone.
NO_CACHE = {
    "Cache-Control": "no-cache,private,no-store,must-revalidate,max-stale=0,post-check=0,pre-check=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
REALM = 'Basic realm="Mailroom administration", charset="UTF-8"'

# Checked in order: the first class the error is an instance of gives the HTTP status of an
# error raised before a function ran (its arguments, the caller, the protocol).
STATUS: list[tuple[type[errors.MailroomError], int]] = [
    (errors.CredentialsRefused, 401),
    (errors.TooManyAttempts, 429),
    (errors.PermissionDenied, 403),
    (errors.ValidationFailed, 400),
    (errors.BadRequest, 400),
    (errors.NotFound, 404),
    (errors.PayloadTooLarge, 413),
    (errors.UnsupportedEncoding, 415),
]


class BadBody(errors.BadRequest):
    """A body that is not a form or a JSON object."""


def envelope(
    *,
    status_code: str,
    status_version: int = 2,
    result: Any = None,
    error: dict[str, str] | None = None,
    token: str | None = None,
    percent: int | None = None,
    status_text: str | None = None,
    log_output: str | None = None,
) -> dict[str, Any]:
    return {
        "error": error,
        "token": token,
        "statusVersion": status_version,
        "statusCode": status_code,
        "percentProgress": percent,
        "statusText": status_text,
        "result": result,
        "logOutput": log_output,
    }


def respond(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={**NO_CACHE, **(headers or {})})


def answered(result: Any) -> JSONResponse:
    return respond(envelope(status_code="succeeded", result=result))


def job_status(status: JobStatus) -> JSONResponse:
    return respond(job_envelope(status.job, [line.text for line in status.log]))


def job_envelope(job: Job, lines: list[str]) -> dict[str, Any]:
    finished = job.state.finished
    error = None if job.error is None else {"message": job.error.message, "details": job.error.details}
    return envelope(
        status_code=job.state.value if finished else "running",
        status_version=job.status_version,
        result=job.result if finished else None,
        error=error,
        token=None if finished else job.job_id,
        percent=None if finished else job.percent,
        status_text=job.status_text,
        log_output="".join(f"{line}\r\n" for line in lines) or None,
    )


def error_body(message: str, details: str = "", *, status_code: str = "failed") -> dict[str, Any]:
    return envelope(status_code=status_code, error={"message": message, "details": details})


def details_of(exc: errors.MailroomError) -> str:
    if isinstance(exc, errors.ValidationFailed):
        return f"{exc.name}: {exc.kind}"
    return type(exc).__name__


def failed(exc: errors.MailroomError) -> JSONResponse:
    """A function that ran and failed: 200, as MailStore answers, with the error in the envelope."""
    return respond(error_body(exc.description, details_of(exc)))


def refused(exc: Exception) -> JSONResponse:
    """A call refused before any function ran: the HTTP status says why, the envelope too."""
    if not isinstance(exc, errors.MailroomError):
        internal = uuid.uuid4().hex
        log.error("administration API: unexpected error %s", internal, exc_info=exc)
        return respond(error_body("An internal error occurred", f"internal id {internal}"), 500)
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 400)
    headers: dict[str, str] = {}
    if isinstance(exc, errors.CredentialsRefused):
        headers["WWW-Authenticate"] = REALM
    if isinstance(exc, errors.TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after)
    return respond(error_body(exc.description, details_of(exc)), status, headers)


def basic_credentials(header: str | None) -> tuple[str, str]:
    """User name and password of an HTTP Basic ``Authorization`` header (RFC 7617, UTF-8)."""
    if not header:
        raise errors.CredentialsRefused("Authentication required")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value or len(value) > 4096:
        raise errors.CredentialsRefused("Authentication required (HTTP Basic)")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise errors.CredentialsRefused("Malformed Basic credentials") from None
    name, colon, password = decoded.partition(":")
    if not colon:
        raise errors.CredentialsRefused("Malformed Basic credentials")
    return name, password
