"""The send and receive patterns against both Mailroom and NHS's mesh-sandbox, for real."""

from __future__ import annotations

import hashlib
import io
import json
import os

import pytest

from mailroom.client import Message, Report

from .conftest import Target


def test_handshake_with_good_and_bad_credentials(server: Target) -> None:
    with server.client("ALICE") as alice, server.client("ALICE", password="wrong") as impostor:
        assert alice.check_authentication() is True
        assert impostor.check_authentication() is False


def test_send_bytes_then_download_ack_and_track(server: Target, tmp_path) -> None:
    with server.client("ALICE") as alice, server.client("BOB") as bob:
        sent = alice.send_bytes(
            "bob", b"hello bob", "WF_1", subject="greeting", local_id="loc-1", file_name="hi.txt",
            content_type="text/plain", encrypted=True,
        )  # fmt: skip
        assert sent.total_chunks == 1
        assert bob.check_inbox() == [sent.message_id]
        message = bob.download_message(sent.message_id, tmp_path / "in")
        assert isinstance(message, Message)
        assert message.read() == b"hello bob"
        assert message.path == tmp_path / "in" / f"{sent.message_id}.dat"
        assert (message.sender, message.recipient, message.workflow_id) == ("ALICE", "BOB", "WF_1")
        assert (message.subject, message.local_id, message.file_name) == ("greeting", "loc-1", "hi.txt")
        assert message.encrypted is True
        saved = json.loads((tmp_path / "in" / f"{sent.message_id}.json").read_text())
        assert saved["subject"] == "greeting"
        assert alice.track(sent.message_id).status == "accepted"
        bob.ack_download_message(sent.message_id)
        assert bob.check_inbox() == []
        assert alice.track(sent.message_id).status == "acknowledged"
        assert alice.track_by_local_id("loc-1").message_id == sent.message_id


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_chunked_file_round_trip(server: Target, tmp_path, gzip: bool) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(150_000) + b"A" * 100_000)
    with server.client("ALICE", chunk_size=64 * 1024) as alice, server.client("BOB") as bob:
        sent = alice.send_file("BOB", source, "WF_CHUNKED", gzip=gzip)
        assert sent.total_chunks == 4
        assert alice.track(sent.message_id).status == "accepted"
        message = bob.download_message(sent.message_id, tmp_path / "in")
        assert message.path is not None
        assert (
            hashlib.sha256(message.path.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
        )
        assert isinstance(message, Message)
        assert message.total_chunks == 4
        assert message.file_name == "big.bin"
        assert not list((tmp_path / "in").glob(".*")), "no partial file or journal left behind"


def test_send_a_one_pass_stream(server: Target) -> None:
    class OnePass(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            chunk = self.data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    payload = os.urandom(30_000)
    with server.client("ALICE", chunk_size=10_000) as alice, server.client("BOB") as bob:
        sent = alice.send_stream("BOB", OnePass(payload), "WF")  # type: ignore[arg-type]
        assert sent.total_chunks == 3
        out = io.BytesIO()
        bob.download_message(sent.message_id, out)
        assert out.getvalue() == payload


def test_check_inbox_follows_pages(server: Target) -> None:
    with server.client("ALICE") as alice, server.client("BOB") as bob:
        sent = [alice.send_bytes("BOB", b"%d" % n, "WF").message_id for n in range(23)]
        pages = list(bob.inbox_pages(max_results=10))
        assert [len(page) for page in pages] == [10, 10, 3]
        assert sorted(id_ for page in pages for id_ in page) == sorted(sent)
        assert sorted(bob.check_inbox()) == sorted(sent)


def test_check_and_download_to_folder_acks_what_is_on_disk(server: Target, tmp_path) -> None:
    with server.client("ALICE") as alice, server.client("BOB") as bob:
        ids = {alice.send_bytes("BOB", f"body {n}".encode(), "WF").message_id for n in range(3)}
        saved = bob.check_and_download(tmp_path / "inbox")
        assert {item.message_id for item in saved} == ids
        for message_id in ids:
            assert (tmp_path / "inbox" / f"{message_id}.dat").read_bytes().startswith(b"body ")
        assert bob.check_inbox() == []


def test_generator_acks_only_after_processing_returns(server: Target) -> None:
    with server.client("ALICE") as alice, server.client("BOB") as bob:
        first = alice.send_bytes("BOB", b"one", "WF").message_id
        second = alice.send_bytes("BOB", b"two", "WF").message_id
        messages = bob.check_and_download()
        item = next(messages)
        assert isinstance(item, Message)
        assert item.read() == b"one"
        assert set(bob.check_inbox()) == {first, second}, "not acknowledged while being processed"
        item = next(messages)
        assert item.read() == b"two"
        assert bob.check_inbox() == [second], "the first was acknowledged when the second was asked for"
        assert list(messages) == []
        assert bob.check_inbox() == []


def test_an_exception_in_processing_leaves_the_message_in_the_inbox(server: Target) -> None:
    with server.client("ALICE") as alice, server.client("BOB") as bob:
        message_id = alice.send_bytes("BOB", b"poison", "WF").message_id

        def process_all() -> None:
            for _item in bob.check_and_download():
                raise ValueError("cannot process")

        with pytest.raises(ValueError, match="cannot process"):
            process_all()
        assert bob.check_inbox() == [message_id]


def test_breaking_out_of_the_loop_does_not_acknowledge(server: Target) -> None:
    with server.client("ALICE") as alice, server.client("BOB") as bob:
        message_id = alice.send_bytes("BOB", b"later", "WF").message_id
        for _item in bob.check_and_download():
            break
        assert bob.check_inbox() == [message_id]


def test_non_delivery_report_is_linked_to_the_original(server: Target, tmp_path) -> None:
    with server.client("ALICE") as alice:
        original = alice.send_bytes("BOB", b"never collected", "WF").message_id
        report_id = server.inject_report("ALICE", original, workflow="WF")
        items = list(alice.check_and_download())
        assert len(items) == 1
        report = items[0]
        assert isinstance(report, Report)
        assert report.is_report
        assert (report.message_id, report.linked_message_id, report.code) == (report_id, original, "14")
        assert "not collected" in (report.description or "")
        assert original in report.summary()
        assert alice.check_inbox() == []


def test_report_saved_to_folder(server: Target, tmp_path) -> None:
    with server.client("ALICE") as alice:
        original = alice.send_bytes("BOB", b"x", "WF").message_id
        report_id = server.inject_report("ALICE", original)
        (report,) = alice.check_and_download(tmp_path)
        assert isinstance(report, Report)
        saved = json.loads((tmp_path / f"{report_id}.json").read_text())
        assert saved["message_type"] == "REPORT"
        assert saved["linked_message_id"] == original


def test_lookup(server: Target) -> None:
    with server.client("ALICE") as alice:
        found = alice.lookup("X26", "RESTRICTED_WORKFLOW")
        assert [endpoint.mailbox_id for endpoint in found] == ["BOB"]
        assert alice.lookup("X26", "NO_SUCH_WORKFLOW") == []
