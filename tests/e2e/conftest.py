"""Fixtures for end-to-end tests: one CLI-prepared data directory, copied into each server.

``start_server(...)`` starts a Mailroom subprocess on a fresh copy and stops it when the test
ends (also after a crash test has killed and restarted it). ``shared_server`` is one plain
server per module for tests that do not care about a clean slate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.e2e.admin_harness import make_admin_template
from tests.e2e.harness import Mailroom, make_data_dir, start_mailroom
from tests.support.certs import CertBundle, make_pki

StartServer = Callable[..., Mailroom]


@pytest.fixture(scope="session")
def template_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data_dir(tmp_path_factory.mktemp("template") / "data")


@pytest.fixture(scope="session")
def admin_template(tmp_path_factory: pytest.TempPathFactory, template_data_dir: Path) -> Path:
    """The template plus two administrators (``admin_harness.ROOT`` and ``VIEWER``)."""
    return make_admin_template(tmp_path_factory.mktemp("admin-template") / "data", template_data_dir)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CertBundle:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def start_server(tmp_path: Path, template_data_dir: Path) -> Iterator[StartServer]:
    started: list[Mailroom] = []

    def start(name: str = "server", **options: object) -> Mailroom:
        server = start_mailroom(tmp_path / name, template_data_dir, **options)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, template_data_dir: Path) -> Iterator[Mailroom]:
    server = start_mailroom(tmp_path_factory.mktemp("shared"), template_data_dir)
    yield server
    server.stop()
