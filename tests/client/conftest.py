"""Real servers on loopback for the client's tests: Mailroom and NHS's mesh-sandbox.

``server`` is parametrised over both (one process of each per session, emptied with
``DELETE /admin/reset`` before every test); ``mailroom`` is the Mailroom one alone, for tests
that need what only it does (single-use tokens, durable storage for big payloads).
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.support.certs import CertBundle, make_pki, ssl_context
from tests.support.fault_proxy import FaultProxy
from tests.support.server import ServerProcess
from tests.support.targets import SBX_PYTHON_ENV, build_mailroom, build_mesh_sandbox, nhs_test_workspace

from mailroom.client import MeshClient, RetryPolicy

ROOT = Path(__file__).resolve().parents[2]
SHARED_KEY = "TestKey"
PASSWORD = "password"
FAST_RETRY = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)


@dataclass
class Target:
    """A running server and how to reach it."""

    name: str
    process: ServerProcess
    pki: CertBundle
    tmp: Path

    @property
    def url(self) -> str:
        return self.process.base_url

    @property
    def verify(self) -> ssl.SSLContext:
        return ssl_context(self.pki)

    def client(self, mailbox: str = "ALICE", *, url: str | None = None, **options: object) -> MeshClient:
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("journal_dir", self.tmp / "journal")
        return MeshClient(
            url or self.url, mailbox, options.pop("password", PASSWORD), SHARED_KEY,  # type: ignore[arg-type]
            ca=self.pki.ca_cert, **options,  # type: ignore[arg-type]
        )  # fmt: skip

    def admin(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = httpx.request(method, self.url + path, verify=self.verify, timeout=10, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 200, (response.status_code, response.text)
        return response

    def inject_report(self, mailbox: str, linked: str, *, code: str = "14", workflow: str = "WF") -> str:
        body = {
            "mailbox_id": mailbox,
            "code": code,
            "description": "Message not collected by recipient after 5 days",
            "workflow_id": workflow,
            "linked_message_id": linked,
        }
        return str(self.admin("POST", "/messageexchange/admin/report", json=body).json()["message_id"])

    def set_status(self, message_id: str, status: str) -> None:
        self.admin("POST", f"/messageexchange/admin/message/{message_id}/event", json={"status": status})


@pytest.fixture(scope="session")
def client_pki(tmp_path_factory: pytest.TempPathFactory) -> CertBundle:
    return make_pki(tmp_path_factory.mktemp("client-pki"))


def _start(builder: Callable[..., ServerProcess], root: Path, pki: CertBundle) -> Iterator[ServerProcess]:
    with builder(nhs_test_workspace(root, pki)) as process:
        yield process


@pytest.fixture(scope="session")
def mailroom_process(
    tmp_path_factory: pytest.TempPathFactory, client_pki: CertBundle
) -> Iterator[ServerProcess]:
    yield from _start(build_mailroom, tmp_path_factory.mktemp("mailroom"), client_pki)


@pytest.fixture(scope="session")
def sandbox_process(
    tmp_path_factory: pytest.TempPathFactory, client_pki: CertBundle
) -> Iterator[ServerProcess]:
    default = ROOT / ".venv-sandbox" / "bin" / "python"
    if not os.environ.get(SBX_PYTHON_ENV) and default.exists():
        os.environ[SBX_PYTHON_ENV] = str(default)
    yield from _start(build_mesh_sandbox, tmp_path_factory.mktemp("sandbox"), client_pki)


def _target(name: str, process: ServerProcess, pki: CertBundle, tmp: Path) -> Target:
    target = Target(name, process, pki, tmp)
    target.admin("DELETE", "/admin/reset")
    return target


@pytest.fixture(params=["mailroom", "mesh-sandbox"])
def server(request: pytest.FixtureRequest, client_pki: CertBundle, tmp_path: Path) -> Target:
    fixture = "mailroom_process" if request.param == "mailroom" else "sandbox_process"
    return _target(request.param, request.getfixturevalue(fixture), client_pki, tmp_path)


@pytest.fixture
def mailroom(mailroom_process: ServerProcess, client_pki: CertBundle, tmp_path: Path) -> Target:
    return _target("mailroom", mailroom_process, client_pki, tmp_path)


@pytest.fixture
def proxy(server: Target) -> Iterator[FaultProxy]:
    """A fault proxy in front of ``server`` (clients: ``server.client(url=proxy.url)``)."""
    with FaultProxy(server.url, verify=server.verify) as running:
        yield running


def clean_env() -> dict[str, str]:
    """This environment without any MAILROOM_* or MESH_* variable."""
    return {name: value for name, value in os.environ.items() if not name.startswith(("MAILROOM_", "MESH_"))}


@pytest.fixture(scope="session")
def plain_mailroom_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mailroom serve`` without TLS, as the quickstart runs it (plain HTTP on loopback), holding
    NHS's test mailboxes (password ``password``); shared key ``TestKey``."""
    root = tmp_path_factory.mktemp("plain-mailroom")
    env = {**clean_env(), "MAILROOM_SHARED_KEY": SHARED_KEY}
    ws = nhs_test_workspace(root, make_pki(root / "pki"))
    data = str(root / "data")
    for kind, path in (("mailbox", ws.mailboxes), ("workflow", ws.workflows)):
        command = [sys.executable, "-m", "mailroom", kind, "import", str(path), "--data-dir", data]
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
    argv = [
        sys.executable,
        "-m",
        "mailroom",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--data-dir",
        data,
    ]
    with ServerProcess(argv, log_path=root / "server.log", env=env, scheme="http") as server:
        yield server.base_url
