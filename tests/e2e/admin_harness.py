"""The administration API against real ``mailroom serve`` processes: administrators made with
the CLI, servers started on a data directory (one directory may be served by several), and
the calls end-to-end tests make. Nothing here imports server code."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.harness import Mailroom, server_env
from tests.support.certs import CertBundle
from tests.support.server import ServerProcess

ROOT = ("root", "correct horse battery")
VIEWER = ("viewer", "just looking around")
ENVELOPE_KEYS = [
    "error",
    "token",
    "statusVersion",
    "statusCode",
    "percentProgress",
    "statusText",
    "result",
    "logOutput",
]
STATUS_CODES = {"succeeded", "failed", "running", "cancelled"}
#: What every server here runs with: the API on, other processes' changes seen quickly.
ADMIN_ENV = {"MAILROOM_ADMIN_API": "true", "MAILROOM_JOB_POLL_INTERVAL": "0.2"}


def add_admin(data_dir: Path, name: str, password: str, privilege: str = "admin") -> None:
    command = [
        sys.executable, "-m", "mailroom", "admin", "user", "add", name, "--password-stdin",
        "--privilege", privilege, "--data-dir", str(data_dir),
    ]  # fmt: skip
    done = subprocess.run(
        command, input=password + "\n", env=server_env({}), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"


def make_admin_template(target: Path, template: Path) -> Path:
    """``template`` (mailboxes ALICE and BOB) plus the administrators ROOT (admin), VIEWER (read)."""
    shutil.copytree(template, target)
    add_admin(target, *ROOT)
    add_admin(target, *VIEWER, privilege="read")
    return target


def serve(
    data_dir: Path,
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    pki: CertBundle | None = None,
    workers: int = 1,
) -> Mailroom:
    """``mailroom serve`` on ``data_dir`` as it is (not copied: several servers may share it)."""
    argv = [
        sys.executable, "-m", "mailroom", "serve", "--host", "127.0.0.1", "--port", "{port}",
        "--data-dir", str(data_dir), "--workers", str(workers),
    ]  # fmt: skip
    if pki:
        argv += ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    process = ServerProcess(
        argv,
        log_path=log_path,
        port=port,
        env=server_env({"MAILROOM_SWEEP_INTERVAL": "0", **ADMIN_ENV, **(env or {})}),
        scheme="https" if pki else "http",
        ca_cert=pki.ca_cert if pki else None,
    )
    server = Mailroom(process, data_dir, pki)
    server.start()
    return server


def check_envelope(response: httpx.Response) -> dict[str, Any]:
    """The body of an answer, checked to be the envelope: exactly its keys, in order, typed."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert response.headers["cache-control"].startswith("no-cache,private,no-store"), response.headers
    assert not response.content.startswith(b"\xef\xbb\xbf")  # no BOM (MailStore sends one)
    body: dict[str, Any] = response.json()
    assert list(body) == ENVELOPE_KEYS, body
    assert body["statusCode"] in STATUS_CODES, body
    assert isinstance(body["statusVersion"], int), body
    error = body["error"]
    if response.status_code != 200:
        assert body["statusCode"] == "failed", body
    if error is not None:
        assert list(error) == ["message", "details"], body
        assert isinstance(error["message"], str), body
        assert error["message"], body
        assert isinstance(error["details"], str), body
    return body


def invoke(client: httpx.Client, function: str, data: Mapping[str, str] | None = None, **kw: Any) -> Any:
    response = client.post(f"/api/invoke/{function}", data=data or {}, **kw)
    return check_envelope(response)


def status(client: httpx.Client, token: str, known: int, timeout_ms: int) -> dict[str, Any]:
    data = {"token": token, "lastKnownStatusVersion": str(known), "millisecondsTimeout": str(timeout_ms)}
    response = client.post("/api/get-status", data=data)
    assert response.status_code == 200, response.text
    return check_envelope(response)


def follow(client: httpx.Client, token: str, known: int = 0, rounds: int = 200) -> tuple[dict[str, Any], str]:
    """Poll the job to its end: its final status and every log line seen on the way."""
    log = ""
    for _ in range(rounds):
        body = status(client, token, known, 5_000)
        assert body["statusVersion"] >= known
        known = body["statusVersion"]
        log += body["logOutput"] or ""
        if body["statusCode"] != "running":
            return body, log
    raise AssertionError(f"job {token} still running after {rounds} polls")


def threads_of(pid: int) -> int:
    return _status_field(pid, "Threads")


def rss_of(pid: int) -> int:
    """Resident memory in bytes."""
    return _status_field(pid, "VmRSS") * 1024


def _status_field(pid: int, name: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{name}:\s+(\d+)", text, re.MULTILINE)
    assert match, f"no {name} in /proc/{pid}/status"
    return int(match.group(1))
