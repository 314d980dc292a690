"""Bodies declared ``Content-Encoding: gzip`` are checked as they stream in; stored bad gzip
(kept before that check) downloads without a traceback.

Every way a body reaches storage is covered: small ones kept in their row, ones read whole
(up to 1 MiB), larger ones streamed, and ones sent without a length; for chunk 1 and chunk n,
on MESH v1 and v2 (and, through the ``stack`` fixture, on SQLite + files and PostgreSQL + S3).
"""

from __future__ import annotations

import gzip
import logging
import random
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from mailroom.storage import tables
from mailroom.web.wire.outbox import SMALL_BODY

from ._mesh import assert_error, gz

NOT_GZIP = ("SEND", "Invalid file format", "Content-Encoding is gzip but the body is not a whole gzip stream")
NO_GZIP = {"accept-encoding": "identity"}
PLAIN = random.Random(5).randbytes(SMALL_BODY + 300_000)  # does not compress: gzip is larger still


def bodies() -> dict[str, bytes]:
    whole = gz(PLAIN)
    return {
        "tiny": b"abcde",
        "read whole": PLAIN[:200_000],
        "streamed": PLAIN,
        "cut short": whole[:-4],
        "trailing garbage": whole + b"garbage",
    }


def pieces(body: bytes) -> Iterator[bytes]:
    """The body without a Content-Length (``Transfer-Encoding: chunked``)."""
    for start in range(0, len(body), 64 * 1024):
        yield body[start : start + 64 * 1024]


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("kind", list(bodies()))
def test_a_send_declared_gzip_that_is_not_gzip_is_400(client, headers, v2, kind, length) -> None:
    body = bodies()[kind]
    response = client.post(
        "/messageexchange/ALICE/outbox",
        content=body if length else pieces(body),
        headers=headers("ALICE", v2=v2, mex_to="BOB", mex_workflowid="WF1", content_encoding="gzip"),
    )
    assert_error(response, 400, v2, *NOT_GZIP)
    assert client.get("/messageexchange/BOB/inbox", headers=headers("BOB")).json()["messages"] == []


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("kind", list(bodies()))
def test_a_chunk_declared_gzip_that_is_not_gzip_is_400_and_can_be_sent_again(
    client, headers, v2, kind, length
) -> None:
    first = client.post(
        "/messageexchange/ALICE/outbox",
        content=gz(b"chunk one"),
        headers=headers(
            "ALICE", mex_to="BOB", mex_workflowid="WF1", mex_chunk_range="1:2", content_encoding="gzip"
        ),
    )
    message_id = first.json()["message_id"]
    path = f"/messageexchange/ALICE/outbox/{message_id}/2"
    body = bodies()[kind]

    def chunk_two(content: object, *, v2: bool = True):
        return client.post(
            path,
            content=content,
            headers=headers("ALICE", v2=v2, mex_chunk_range="2:2", content_encoding="gzip"),
        )

    assert_error(
        chunk_two(body if length else pieces(body), v2=v2), 400, v2, *NOT_GZIP, message_id=message_id
    )
    assert client.get("/messageexchange/BOB/inbox", headers=headers("BOB")).json()["messages"] == []
    assert chunk_two(gz(b"chunk two")).status_code == 202
    got = client.get(f"/messageexchange/BOB/inbox/{message_id}/2", headers={**headers("BOB"), **NO_GZIP})
    assert got.content == b"chunk two"


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
def test_large_gzip_bodies_stream_in_and_download_decompressed(client, headers, length) -> None:
    body = gz(PLAIN) + gz(b" and a second member")
    response = client.post(
        "/messageexchange/ALICE/outbox",
        content=body if length else pieces(body),
        headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF1", content_encoding="gzip"),
    )
    assert response.status_code == 202, response.text
    message_id = response.json()["message_id"]
    got = client.get(f"/messageexchange/BOB/inbox/{message_id}", headers={**headers("BOB"), **NO_GZIP})
    assert got.content == PLAIN + b" and a second member"


def test_an_empty_first_chunk_declared_gzip_is_the_usual_417(client, headers, v2) -> None:
    response = client.post(
        "/messageexchange/ALICE/outbox",
        content=b"",
        headers=headers("ALICE", v2=v2, mex_to="BOB", mex_workflowid="WF1", content_encoding="gzip"),
    )
    assert_error(response, 417, v2, "COLLECT", "02", "Data file is missing or inaccessible.")


# -- stored before bodies were checked ---------------------------------------------------------


@pytest.fixture
def stored_as_gzip(client, headers, container):
    """``stored_as_gzip(body)``: a message whose stored bytes are ``body`` and whose encoding is
    recorded as gzip, as a send before the check could leave it."""

    def make(body: bytes) -> str:
        response = client.post(
            "/messageexchange/ALICE/outbox",
            content=body,
            headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF1"),
        )
        assert response.status_code == 202, response.text
        message_id: str = response.json()["message_id"]
        with container.db.write() as conn:
            messages = tables.messages
            conn.execute(
                update(messages).where(messages.c.message_id == message_id).values(content_encoding="gzip")
            )
        return message_id

    return make


@pytest.mark.parametrize("size", [5, 200_000, SMALL_BODY + 1], ids=["in its row", "read whole", "streamed"])
def test_stored_bytes_that_are_not_gzip_are_refused_before_any_header(
    client, headers, stored_as_gzip, caplog, v2, size
) -> None:
    message_id = stored_as_gzip(random.Random(size).randbytes(size))
    with caplog.at_level(logging.INFO):
        got = client.get(
            f"/messageexchange/BOB/inbox/{message_id}", headers={**headers("BOB", v2=v2), **NO_GZIP}
        )
    assert_error(
        got,
        406,
        v2,
        "RECEIVE",
        "UndecodablePayload",
        "The stored chunk cannot be decompressed; ask with Accept-Encoding: gzip for it as stored",
        message_id=message_id,
    )
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [(message_id in record.getMessage(), record.exc_info) for record in errors] == [(True, None)]
    # as stored, for a client that accepts gzip
    asked = {**headers("BOB"), "accept-encoding": "gzip"}
    with client.stream("GET", f"/messageexchange/BOB/inbox/{message_id}", headers=asked) as raw:
        assert (raw.status_code, raw.headers["content-encoding"]) == (200, "gzip")
        assert len(b"".join(raw.iter_raw())) == size


def test_bytes_after_the_last_gzip_member_are_ignored_on_download(client, headers, stored_as_gzip) -> None:
    """Refused on upload now; stored before, they download as gzip(1) reads them."""
    message_id = stored_as_gzip(gzip.compress(b"payload", mtime=0) + b"\x00\x00\x00")
    got = client.get(f"/messageexchange/BOB/inbox/{message_id}", headers={**headers("BOB"), **NO_GZIP})
    assert (got.status_code, got.content) == (200, b"payload")
