"""A real code-14 report: Mailroom expires an uncollected message and the sender's client
surfaces the report, linked to the message it is about."""

from __future__ import annotations

import time

import pytest
from tests.support.targets import build_mailroom, nhs_test_workspace

from mailroom.client import Report

from .conftest import Target


@pytest.mark.slow
def test_uncollected_message_comes_back_as_a_linked_report(client_pki, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MAILROOM_INBOX_RETENTION", "1s")
    monkeypatch.setenv("MAILROOM_SWEEP_INTERVAL", "0.5s")
    with build_mailroom(nhs_test_workspace(tmp_path / "expiring", client_pki)) as process:
        target = Target("mailroom", process, client_pki, tmp_path)
        with target.client("ALICE") as alice, target.client("BOB") as bob:
            sent = alice.send_bytes("BOB", b"never collected", "WF_EXPIRY", local_id="ref-14", subject="s")
            deadline = time.monotonic() + 20
            while not alice.check_inbox() and time.monotonic() < deadline:
                time.sleep(0.3)
            (report,) = alice.check_and_download(tmp_path / "alice-in")
            assert isinstance(report, Report)
            assert report.linked_message_id == sent.message_id
            assert report.code == "14"
            assert report.local_id == "ref-14"
            assert report.workflow_id == "WF_EXPIRY"
            assert not report.success
            assert bob.check_inbox() == []
            assert alice.track(sent.message_id).status == "undeliverable"
