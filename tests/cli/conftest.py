"""The ``run`` fixture: ``mailroom`` invoked in-process on a data directory of the test's own."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mailroom.cli.main import cli
from mailroom.container import Container, build_container
from mailroom.settings import load_settings


@pytest.fixture
def run(tmp_path, monkeypatch):
    """``run(*args, ok=True, input=None)`` → click's result; ``ok`` is whether it must exit 0."""
    monkeypatch.delenv("MAILROOM_DATA_DIR", raising=False)
    data_dir = tmp_path / "data"

    def invoke(*args: str, ok: bool = True, input: str | None = None):
        result = CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)], input=input)
        assert (result.exit_code == 0) is ok, result.output
        return result

    invoke.data_dir = data_dir
    return invoke


def store(run) -> Container:
    """The store ``run`` acts on, as a running server would open it."""
    return build_container(load_settings({}, data_dir=run.data_dir))
