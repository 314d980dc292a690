"""Server targets for contract tests: how to start mesh-sandbox or Mailroom on the test PKI.

Each builder returns an *unstarted* :class:`ServerProcess`, or calls ``pytest.skip`` when
that server is not available in this environment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.certs import CertBundle
from tests.support.server import ServerProcess

SANDBOX_LAUNCHER = Path(__file__).resolve().parent / "mesh_sandbox_launcher.py"
SBX_PYTHON_ENV = "MAILROOM_SBX_PYTHON"
DEFAULT_SBX_PYTHON = "/tmp/sbx-venv/bin/python"
SHARED_KEY = "TestKey"
NHS_DEFAULT_PORT = 8701

#: NHS's test mailboxes and workflows (mesh-client's ``tests/*.jsonl``); password ``password``.
TEST_PASSWORD = "password"
NHS_TEST_MAILBOXES: tuple[dict[str, str], ...] = (
    {"mailbox_id": "ALICE", "mailbox_name": "TESTMB1", "billing_entity": "England", "ods_code": "X26"},
    {"mailbox_id": "BOB", "mailbox_name": "TESTMB2", "billing_entity": "Wales", "ods_code": "X26"},
    {"mailbox_id": "BARRY", "mailbox_name": "TESTMB3", "billing_entity": "England", "ods_code": "X27"},
)
NHS_TEST_WORKFLOWS: tuple[dict[str, object], ...] = (
    {"workflow_id": "RESTRICTED_WORKFLOW", "senders": ["ALICE"], "receivers": ["BOB"]},
    {"workflow_id": "ANOTHER_WORKFLOW", "senders": ["BOB"], "receivers": ["BARRY", "ALICE"]},
)


@dataclass(frozen=True)
class Workspace:
    """Everything a target needs: a private folder, certs, data files and an optional port."""

    root: Path
    pki: CertBundle
    mailboxes: Path
    workflows: Path
    port: int | None = None


@dataclass(frozen=True)
class RunningServer:
    name: str
    process: ServerProcess

    @property
    def suite_url(self) -> str | None:
        """URL for NHS's suite; None on their hard-coded port 8701 (run it unmodified)."""
        if self.process.port == NHS_DEFAULT_PORT:
            return None
        return f"https://localhost:{self.process.port}"


Builder = Callable[[Workspace], ServerProcess]


def _write_jsonl(path: Path, rows: Iterable[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def nhs_test_workspace(root: Path, pki: CertBundle, port: int | None = None) -> Workspace:
    """A workspace in ``root`` holding NHS's test mailboxes (ALICE, BOB, BARRY) and workflows."""
    root.mkdir(parents=True, exist_ok=True)
    boxes = [{**box, "org_code": box["ods_code"], "password": TEST_PASSWORD} for box in NHS_TEST_MAILBOXES]
    mailboxes = _write_jsonl(root / "mailboxes.jsonl", boxes)
    workflows = _write_jsonl(root / "workflows.jsonl", NHS_TEST_WORKFLOWS)
    return Workspace(root, pki, mailboxes, workflows, port)


def sandbox_python() -> Path:
    return Path(os.environ.get(SBX_PYTHON_ENV, DEFAULT_SBX_PYTHON))


def build_mesh_sandbox(ws: Workspace) -> ServerProcess:
    """NHS's mesh-sandbox (memory store, full auth) in its own venv, served by uvicorn over TLS."""
    python = sandbox_python()
    if not python.exists():
        pytest.skip(f"mesh-sandbox venv not found at {python} (set {SBX_PYTHON_ENV})")
    if ws.mailboxes.parent != ws.workflows.parent:
        raise ValueError("mesh-sandbox needs mailboxes.jsonl and workflows.jsonl in one folder")
    argv = [
        str(python), str(SANDBOX_LAUNCHER), "--port", "{port}", "--data-dir", str(ws.mailboxes.parent),
        "--certfile", str(ws.pki.server_cert), "--keyfile", str(ws.pki.server_key),
    ]  # fmt: skip
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "STORE_MODE": "memory",
        "AUTH_MODE": "full",
        "SHARED_KEY": SHARED_KEY,
    }
    return ServerProcess(argv, log_path=ws.root / "server.log", port=ws.port, env=env, ca_cert=ws.pki.ca_cert)


def _mailroom_cli(*args: str | Path, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "mailroom", *map(str, args)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def build_mailroom(ws: Workspace, *, require_client_cert: bool = False) -> ServerProcess:
    """Mailroom in sandbox mode over TLS, data imported from jsonl.

    Client certificates are optional unless ``require_client_cert`` (then the health probe
    presents the test client certificate).
    """
    if importlib.util.find_spec("mailroom") is None or importlib.util.find_spec("mailroom.__main__") is None:
        pytest.skip("mailroom (with `python -m mailroom`) is not installed in this environment yet")
    env = {**os.environ, "MAILROOM_SHARED_KEY": SHARED_KEY}
    data_dir = ws.root / "data"
    _mailroom_cli("mailbox", "import", ws.mailboxes, "--data-dir", data_dir, env=env)
    _mailroom_cli("workflow", "import", ws.workflows, "--data-dir", data_dir, env=env)
    argv = [
        sys.executable, "-m", "mailroom", "serve", "--host", "127.0.0.1", "--port", "{port}",
        "--data-dir", str(data_dir), "--tls-cert", str(ws.pki.server_cert),
        "--tls-key", str(ws.pki.server_key), "--tls-client-ca", str(ws.pki.ca_cert), "--sandbox",
    ]  # fmt: skip
    client_cert = None
    if require_client_cert:
        argv.append("--require-client-cert")
        client_cert = (ws.pki.client_cert, ws.pki.client_key)
    return ServerProcess(
        argv,
        log_path=ws.root / "server.log",
        port=ws.port,
        env=env,
        ca_cert=ws.pki.ca_cert,
        client_cert=client_cert,
    )


SERVER_TARGETS: dict[str, Builder] = {"mesh-sandbox": build_mesh_sandbox, "mailroom": build_mailroom}
