"""Run NHS England's own mesh-client integration suite against a real server process."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support import nhs_suite
from tests.support.targets import RunningServer

# Tests in mesh-client's tests/mesh_sandbox_tests.py, per released version.
EXPECTED_TESTS = {"5.0.2": 24}


@pytest.mark.contract
def test_nhs_mesh_client_sandbox_suite(contract_server: RunningServer, nhs_suite_dir: Path) -> None:
    result = nhs_suite.run_suite(nhs_suite_dir, contract_server.suite_url)

    client_version = nhs_suite.installed_client_version()
    expected = EXPECTED_TESTS.get(client_version)
    report = (
        f"NHS mesh-client {client_version} suite vs {contract_server.name} "
        f"({contract_server.process.base_url}): {result.summary()}\n"
        f"--- pytest output tail ---\n{result.output[-3000:]}\n"
        f"--- server log tail ({contract_server.process.log_path}) ---\n"
        f"{contract_server.process.log_tail()}"
    )
    assert not result.problems, report
    assert result.returncode == 0, report
    assert result.passed, report
    if expected is not None:
        assert len(result.passed) == expected, report
