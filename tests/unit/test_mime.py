"""The multipart/mixed document a MESH recipient gets: its size known in advance, its parts
read back exactly by Python's MIME parser, whatever the names and the body."""

from __future__ import annotations

import email
import email.policy
import os

import pytest

from mailroom.domain.mime import MimeLayout, MimePart


def document(body, files):
    layout = MimeLayout("mailroom-test-1", body, [MimePart(n, t, len(d)) for n, t, d in files])
    data = b"".join(layout.pieces(lambda i: iter([files[i][2][:3], files[i][2][3:]])))
    return layout, data


def parse(layout, data):
    return email.message_from_bytes(
        f"Content-Type: {layout.content_type}\r\n\r\n".encode() + data, policy=email.policy.default
    )


@pytest.mark.parametrize(
    "body", [None, "", "plain ascii\nsecond line", "Ünïcödé £5 ✓", "x" * 5000, "a\r\nb", "--mailroom-test-1"]
)
def test_the_body_and_every_attachment_come_back_exactly_and_the_size_is_known(body):
    files = [("a.bin", "application/octet-stream", os.urandom(5000)), ("b.txt", "text/plain", b"\x00\r\n--x")]
    layout, data = document(body, files)
    assert layout.size == len(data)
    parts = list(parse(layout, data).iter_parts())
    if body is not None:
        text = parts.pop(0)
        assert text.get_content_type() == "text/plain"
        assert text.get_content().replace("\r\n", "\n") == body.replace("\r\n", "\n")
    assert [p.get_payload(decode=True) for p in parts] == [d for _n, _t, d in files]
    assert [p.get_content_type() for p in parts] == ["application/octet-stream", "text/plain"]


@pytest.mark.parametrize(
    "name", ['quote"d.txt', "semi;colon=x.txt", "slash/and\\back.txt", "ünï cödé.pdf", "a\r\nX-Evil: 1.txt"]
)
def test_hostile_file_names_cannot_break_a_header_and_round_trip(name):
    layout, data = document(None, [(name, "text/plain", b"data")])
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"X-Evil" not in head.split(b"filename*=")[0]  # only inside the percent-encoded form
    assert b"\r\nX-Evil" not in head
    [part] = list(parse(layout, data).iter_parts())
    assert part.get_filename() == name


def test_a_content_type_that_could_break_the_header_is_sent_as_bytes():
    layout, data = document(None, [("x", "text/plain\r\nX-Evil: 1", b"data")])
    assert b"X-Evil" not in data
    [part] = list(parse(layout, data).iter_parts())
    assert part.get_content_type() == "application/octet-stream"


def test_attachments_are_streamed_not_held():
    layout = MimeLayout("mailroom-big", None, [MimePart("big", "application/octet-stream", 64 * 1024 * 1024)])
    pieces = layout.pieces(lambda _i: (b"\x00" * (1024 * 1024) for _ in range(64)))
    assert max(len(p) for p in pieces) <= 1024 * 1024
