"""``mailroom db migrate-data`` between two embedded installations (SQLite and payload files):
the command copies into whatever stores the settings name, not only PostgreSQL and S3."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from tests.conftest import SHARED_KEY
from tests.scaleout.test_migrate_data import everything, old_installation

from mailroom.cli.main import cli
from mailroom.container import build_container
from mailroom.settings import load_settings
from mailroom.storage import transfer

__all__ = ["old_installation"]  # the fixture, shared with the PostgreSQL tests


@pytest.mark.parametrize("batch", [2, transfer.BATCH], ids=["batches-of-2", "default-batches"])
def test_an_embedded_installation_is_copied_into_another_data_directory(
    old_installation, tmp_path, clock, monkeypatch, batch
):
    monkeypatch.setattr(transfer, "BATCH", batch)  # small batches: every table over several pages
    target_dir = tmp_path / "new"
    done = CliRunner().invoke(
        cli,
        ["db", "migrate-data", "--from-data-dir", str(old_installation), "--data-dir", str(target_dir)],
        env={"MAILROOM_SHARED_KEY": SHARED_KEY},
    )
    assert done.exit_code == 0, done.output
    assert (target_dir / "mailroom.db").is_file()

    containers = [
        build_container(load_settings({}, data_dir=folder, shared_key=SHARED_KEY), clock=clock, migrate=False)
        for folder in (old_installation, target_dir)
    ]
    try:
        original, copied = (everything(container) for container in containers)
        assert copied == original
        assert len(copied["payloads"]) == 7
    finally:
        for container in containers:
            container.close()


def test_copying_an_installation_onto_itself_is_refused(old_installation):
    done = CliRunner().invoke(
        cli,
        ["db", "migrate-data", "--from-data-dir", str(old_installation), "--data-dir", str(old_installation)],
        env={"MAILROOM_SHARED_KEY": SHARED_KEY},
    )
    assert done.exit_code == 1
    assert "source and target are the same database" in done.output
