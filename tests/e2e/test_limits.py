"""Configured limits answer with MESH error bodies (413/417/400), never a 500, and store nothing.

The server runs with a 1 MB chunk limit, a 2.5 MB message limit, at most 3 chunks and a
10-character ``Mex-Subject``, all set through the environment as an operator would.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.e2e.conftest import StartServer
from tests.e2e.harness import (
    V2,
    WORKFLOW,
    Mailroom,
    Payload,
    download,
    files_under,
    inbox,
    send,
    send_chunk,
)

CHUNK_LIMIT = 1_000_000
MESSAGE_LIMIT = 2_500_000
LIMITS = {
    "MAILROOM_MAX_CHUNK_BYTES": str(CHUNK_LIMIT),
    "MAILROOM_MAX_MESSAGE_BYTES": str(MESSAGE_LIMIT),
    "MAILROOM_MAX_CHUNKS": "3",
    "MAILROOM_HEADER_LIMITS": "mex-subject=10",
}
SEND_HEADERS = {"mex-to": "BOB", "mex-workflowid": WORKFLOW}


@pytest.fixture
def server(start_server: StartServer) -> Mailroom:
    return start_server(env=LIMITS)


def streamed(size: int, seed: int = 1) -> Iterator[bytes]:
    """A body without Content-Length (``Transfer-Encoding: chunked``)."""
    return Payload(size, seed, piece=64 * 1024).pieces()


def assert_too_large(response: httpx.Response, message_id: str | None = None) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == V2
    body = response.json()
    assert body["detail"] == [
        {"event": "SEND", "code": "MaxSizeExceeded", "msg": "Request body exceeds the maximum size"}
    ]
    assert body.get("message_id") == message_id


def test_declared_content_length_over_the_limit_is_413(server: Mailroom) -> None:
    alice = server.client("ALICE")
    body = b"a" * (CHUNK_LIMIT + 1)
    assert_too_large(alice.post("/messageexchange/ALICE/outbox", content=body, headers=SEND_HEADERS))

    v1 = server.client("ALICE", v2=False)
    response = v1.post("/messageexchange/ALICE/outbox", content=body, headers=SEND_HEADERS)
    assert response.status_code == 413
    assert response.json() == {
        "errorEvent": "SEND",
        "errorCode": "MaxSizeExceeded",
        "errorDescription": "Request body exceeds the maximum size",
    }
    assert send(alice, b"a" * CHUNK_LIMIT)  # exactly at the limit is fine
    assert files_under(server.uploads) == []


def test_streamed_body_over_the_limit_is_413_and_stores_nothing(server: Mailroom) -> None:
    alice, bob = server.client("ALICE"), server.client("BOB")
    headers = {**SEND_HEADERS, "mex-chunk-range": "1:2"}

    response = alice.post("/messageexchange/ALICE/outbox", content=streamed(3 * CHUNK_LIMIT), headers=headers)

    assert "content-length" not in response.request.headers
    assert_too_large(response)
    assert inbox(bob) == []
    assert files_under(server.data_dir / "payloads") == []
    # the server is still healthy and the same body at the limit goes through
    assert send(alice, streamed(CHUNK_LIMIT), chunks="1:2")


def test_streamed_chunk_over_the_limit_is_413_and_message_stays_incomplete(server: Mailroom) -> None:
    alice, bob = server.client("ALICE"), server.client("BOB")
    first = Payload(1000, seed=2)
    message_id = send(alice, first.bytes(), chunks="1:2")
    before = files_under(server.objects)

    assert_too_large(send_chunk(alice, message_id, 2, 2, streamed(CHUNK_LIMIT + 1)), message_id)
    assert_too_large(send_chunk(alice, message_id, 2, 2, b"b" * (CHUNK_LIMIT + 1)), message_id)

    assert files_under(server.objects) == before
    assert files_under(server.uploads) == []
    assert inbox(bob) == []
    last = Payload(500, seed=3)
    assert send_chunk(alice, message_id, 2, 2, last.pieces()).status_code == 202
    assert inbox(bob) == [message_id]
    assert download(bob, message_id, 2) == (200, last.sha256, last.size)


def test_total_message_size_limit(server: Mailroom) -> None:
    alice, bob = server.client("ALICE"), server.client("BOB")
    chunk = b"c" * CHUNK_LIMIT
    message_id = send(alice, chunk, chunks="1:3")
    assert send_chunk(alice, message_id, 2, 3, chunk).status_code == 202
    # re-sending a chunk replaces it, so it does not count twice towards the total
    assert send_chunk(alice, message_id, 2, 3, streamed(CHUNK_LIMIT)).status_code == 202

    # 3 x 1 MB > 2.5 MB, whether declared up front or found while streaming
    assert_too_large(send_chunk(alice, message_id, 3, 3, chunk), message_id)
    assert_too_large(send_chunk(alice, message_id, 3, 3, streamed(CHUNK_LIMIT)), message_id)
    assert inbox(bob) == []
    assert files_under(server.uploads) == []

    assert send_chunk(alice, message_id, 3, 3, streamed(MESSAGE_LIMIT - 2 * CHUNK_LIMIT)).status_code == 202
    assert inbox(bob) == [message_id]


def test_too_many_chunks_is_rejected(server: Mailroom) -> None:
    alice = server.client("ALICE")
    response = alice.post(
        "/messageexchange/ALICE/outbox", content=b"x", headers={**SEND_HEADERS, "mex-chunk-range": "1:4"}
    )
    assert response.status_code == 417
    assert response.json()["detail"][0]["code"] == "InvalidHeaderChunks"
    message_id = send(alice, b"x", chunks="1:3")
    response = send_chunk(alice, message_id, 2, 4, b"y")
    assert response.status_code == 417
    assert response.json()["message_id"] == message_id


def test_header_length_limit_override(server: Mailroom) -> None:
    alice = server.client("ALICE")
    response = alice.post(
        "/messageexchange/ALICE/outbox", content=b"x", headers={**SEND_HEADERS, "mex-subject": "s" * 11}
    )
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["header", "mex-subject"]
    assert send(alice, b"x", mex_subject="s" * 10)
    # limits not overridden keep the spec's values
    assert send(alice, b"x", mex_localid="l" * 300)
    response = alice.post(
        "/messageexchange/ALICE/outbox", content=b"x", headers={**SEND_HEADERS, "mex-localid": "l" * 301}
    )
    assert response.status_code == 400
