"""Long administration jobs against a real server process: ``VerifyStore`` survives a SIGKILL of
its server (the job never stays ``running``: it is resumed after the short lease and ends), and
``mailroom admin invoke VerifyStore`` on a pseudo-terminal shows the progress bar, the log and
the result (``--json``: the envelope)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.client.terminal import run_on_terminal
from tests.e2e.harness import WORKFLOW, Mailroom, server_env, start_mailroom

ADMIN = ("root", "correct horse battery")
PAYLOAD = 4 * 1024 * 1024
MESSAGES = 24


@pytest.fixture
def admin_template(template_data_dir: Path, tmp_path: Path) -> Path:
    """The e2e data directory with an administrator, made with the operator CLI."""
    target = tmp_path / "template"
    subprocess.run(["cp", "-a", str(template_data_dir), str(target)], check=True)
    command = [sys.executable, "-m", "mailroom", "admin", "user", "add", ADMIN[0], "--password", ADMIN[1]]
    done = subprocess.run(
        [*command, "--data-dir", str(target)], env=server_env({}), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return target


@pytest.fixture
def admin_server(admin_template: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {"MAILROOM_ADMIN_API": "true", "MAILROOM_JOB_LEASE": "3s", "MAILROOM_JOB_POLL_INTERVAL": "0.2s"}
    server = start_mailroom(tmp_path / "server", admin_template, env=env)
    yield server
    server.stop()


def fill(server: Mailroom, count: int = MESSAGES) -> None:
    alice = server.client("ALICE")
    for n in range(count):
        response = alice.post(
            "/messageexchange/ALICE/outbox",
            content=bytes([n]) * PAYLOAD,
            headers={"mex-to": "BOB", "mex-workflowid": WORKFLOW},
        )
        assert response.status_code == 202, response.text


def api(server: Mailroom) -> httpx.Client:
    return httpx.Client(base_url=server.process.base_url, auth=ADMIN, timeout=30)


def status(client: httpx.Client, token: str, known: int, wait_ms: int = 2000) -> dict[str, Any]:
    data = {"token": token, "lastKnownStatusVersion": str(known), "millisecondsTimeout": str(wait_ms)}
    response = client.post("/api/get-status", data=data)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_server_killed_mid_verify_store_resumes_the_job_after_restart(admin_server: Mailroom) -> None:
    fill(admin_server)
    with api(admin_server) as client:
        started = client.post("/api/invoke/VerifyStore").json()
        assert started["statusCode"] == "running"
        token = started["token"]
        # wait until the job has started (its first log line), then kill wherever it is; it may
        # even have finished already on a fast disk: every outcome below must hold anyway
        deadline = time.monotonic() + 30
        while status(client, token, 0, 0)["statusVersion"] <= started["statusVersion"]:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
    admin_server.kill()
    admin_server.start()
    with api(admin_server) as client:
        version, body = 0, status(client, token, 0, 0)
        deadline = time.monotonic() + 120  # the lease (3 s) runs out, another runner resumes it
        while body["statusCode"] == "running":
            assert time.monotonic() < deadline, f"the job stayed running: {body}"
            version = body["statusVersion"]
            body = status(client, token, version)
        jobs = client.post("/api/invoke/GetJobs", data={"function": "VerifyStore"}).json()["result"]
    assert body["token"] is None
    if body["statusCode"] == "succeeded":
        assert body["result"]["ok"] is True
        assert body["result"]["chunksVerified"] == MESSAGES
        assert body["result"]["bytesVerified"] == MESSAGES * PAYLOAD
    else:  # failed, with the reason
        assert body["statusCode"] == "failed", body
        assert "stopped" in body["error"]["details"]
    assert jobs[0]["token"] == token
    assert jobs[0]["state"] == body["statusCode"]


def cli_env(server: Mailroom) -> dict[str, str]:
    return server_env(
        {
            "MAILROOM_ADMIN_URL": server.process.base_url,
            "MAILROOM_ADMIN_USER": ADMIN[0],
            "MAILROOM_ADMIN_PASSWORD": ADMIN[1],
        }
    )


def test_admin_invoke_verify_store_on_a_terminal_shows_progress_log_and_result(
    admin_server: Mailroom, tmp_path: Path
) -> None:
    fill(admin_server, 8)
    run = run_on_terminal(
        [sys.executable, "-m", "mailroom", "admin", "invoke", "VerifyStore"],
        env=cli_env(admin_server),
        cwd=tmp_path,
        width=100,
    )
    assert run.returncode == 0, run.text
    text = run.raw.decode("utf-8", errors="replace")
    assert any("━" in frame for frame in text.split("\r")), "no progress bar was drawn"
    lines = run.lines
    assert any(line.startswith("Verifying 8 stored chunks") for line in lines), run.text
    assert any("8 chunks verified" in line and "0 corrupt" in line for line in lines), run.text
    shown = run.text[run.text.index("{") :]
    result = json.loads(shown)
    assert result["chunksVerified"] == 8
    assert result["ok"] is True


def test_admin_invoke_json_prints_the_envelope(admin_server: Mailroom) -> None:
    fill(admin_server, 2)
    done = subprocess.run(
        [sys.executable, "-m", "mailroom", "admin", "invoke", "VerifyStore", "--json"],
        env=cli_env(admin_server),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    envelope = json.loads(done.stdout)
    assert list(envelope) == [
        "error", "token", "statusVersion", "statusCode",
        "percentProgress", "statusText", "result", "logOutput",
    ]  # fmt: skip
    assert envelope["statusCode"] == "succeeded"
    assert envelope["token"] is None
    assert envelope["result"]["chunksVerified"] == 2


@pytest.fixture
def idle_server(admin_template: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A server that runs no jobs (``MAILROOM_JOB_THREADS=0``): a job queued there stays queued."""
    env = {"MAILROOM_ADMIN_API": "true", "MAILROOM_JOB_THREADS": "0"}
    server = start_mailroom(tmp_path / "idle", admin_template, env=env)
    yield server
    server.stop()


def _interrupted_follow(server: Mailroom, *extra: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """``mailroom admin invoke PurgeExpired`` interrupted (SIGINT, as Ctrl-C) while it follows the job."""
    command = [sys.executable, "-m", "mailroom", "admin", "invoke", "PurgeExpired", *extra]
    process = subprocess.Popen(
        command, env=cli_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with api(server) as client:
        deadline = time.monotonic() + 30
        jobs: list[dict[str, Any]] = []
        while not jobs and time.monotonic() < deadline:
            jobs = client.post("/api/invoke/GetJobs", data={"function": "PurgeExpired"}).json()["result"]
            time.sleep(0.1)
    assert jobs, "the command queued no job"
    time.sleep(0.5)  # following: waiting in get-status
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    return subprocess.CompletedProcess(command, process.returncode, out, err), jobs[0]["token"]


def test_ctrl_c_stops_following_and_leaves_the_job_running(idle_server: Mailroom) -> None:
    done, token = _interrupted_follow(idle_server)
    assert done.returncode == 1, done.stderr
    assert f"the job goes on: mailroom admin status {token}" in done.stderr
    with api(idle_server) as client:
        assert status(client, token, 0, 0)["statusCode"] == "running"  # still queued


def test_ctrl_c_with_cancel_cancels_the_job(idle_server: Mailroom) -> None:
    done, token = _interrupted_follow(idle_server, "--cancel")
    assert done.returncode == 1, done.stderr
    assert f"job {token}: cancel requested" in done.stderr
    with api(idle_server) as client:
        assert status(client, token, 0, 0)["statusCode"] == "cancelled"  # a queued job ends at once
