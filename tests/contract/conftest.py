"""Fixtures for contract tests: test PKI, NHS's mesh-client suite, and servers to run it on.

``contract_server`` is parametrised over server targets (``tests/support/targets.py``) so
the same test runs against NHS's mesh-sandbox (the reference; skipped when its separate
venv is missing) and against Mailroom (skipped until ``mailroom`` is importable).

Environment knobs:
- ``MAILROOM_SBX_PYTHON``: interpreter of a venv with ``mesh-sandbox`` (default
  ``/tmp/sbx-venv/bin/python``; make one with ``python3.11 -m venv /tmp/sbx-venv &&
  /tmp/sbx-venv/bin/pip install mesh-sandbox``).
- ``MAILROOM_CONTRACT_PORT``: fixed port, e.g. ``8701`` (NHS's hard-coded one) to run their
  suite with no URL override. Default: a free port.
- ``MAILROOM_MESH_CLIENT_SDIST``: a local mesh-client sdist instead of ``pip download``.

``mailroom_server`` (module scope) is one Mailroom process over TLS loaded with the same
mailboxes and workflows as NHS's suite (``nhs_test_workspace``, no sdist needed); ``mailroom``
hands it to a test after emptying it with ``DELETE /admin/reset``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support import nhs_suite
from tests.support.certs import CertBundle, make_pki, ssl_context
from tests.support.server import ServerProcess
from tests.support.targets import (
    SERVER_TARGETS,
    RunningServer,
    Workspace,
    build_mailroom,
    nhs_test_workspace,
)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CertBundle:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def nhs_suite_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki: CertBundle
) -> Path:
    """NHS's mesh-client ``tests/`` (same version as the installed client), with our certs."""
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    cache_dir = cache.mkdir("mesh-client-sdist") if cache else tmp_path_factory.mktemp("sdist")
    sdist = nhs_suite.fetch_sdist(nhs_suite.installed_client_version(), Path(cache_dir))
    return nhs_suite.prepare_suite(sdist, tmp_path_factory.mktemp("nhs-suite"), pki)


def _fixed_port() -> int | None:
    value = os.environ.get("MAILROOM_CONTRACT_PORT")
    return int(value) if value else None


@pytest.fixture(params=sorted(SERVER_TARGETS))
def contract_server(
    request: pytest.FixtureRequest, tmp_path: Path, pki: CertBundle, nhs_suite_dir: Path
) -> Iterator[RunningServer]:
    """A started server (one per target), loaded with NHS's test mailboxes and workflows."""
    name: str = request.param
    tests_dir = nhs_suite_dir / "tests"
    ws = Workspace(tmp_path, pki, tests_dir / "mailboxes.jsonl", tests_dir / "workflows.jsonl", _fixed_port())
    with SERVER_TARGETS[name](ws) as process:
        yield RunningServer(name, process)


@pytest.fixture(scope="module")
def mailroom_server(tmp_path_factory: pytest.TempPathFactory, pki: CertBundle) -> Iterator[ServerProcess]:
    """One real Mailroom process (HTTPS, sandbox mode, shared key TestKey) per test module."""
    ws = nhs_test_workspace(tmp_path_factory.mktemp("mailroom"), pki)
    with build_mailroom(ws) as process:
        yield process


@pytest.fixture
def mailroom(mailroom_server: ServerProcess, pki: CertBundle) -> ServerProcess:
    """The module's Mailroom, emptied like NHS's suite does it (no auth, no client cert)."""
    response = httpx.delete(f"{mailroom_server.base_url}/admin/reset", verify=ssl_context(pki), timeout=10)
    assert response.status_code == 200, (response.status_code, response.text, mailroom_server.log_tail())
    return mailroom_server
