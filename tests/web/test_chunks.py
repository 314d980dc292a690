"""Chunked uploads: ``POST /messageexchange/{mailbox}/outbox/{message_id}/{chunk_no}`` (spec §5.4)."""

from __future__ import annotations

import pytest

from ._mesh import GENERIC, JSON, assert_error, assert_validation, gz

BAD_RANGE = "Invalid chunk values in mex-Chunk-Range"


@pytest.fixture
def start(client, headers):
    """``start(total)`` → id of a message from ALICE to BOB whose chunk 1 of ``total`` is stored."""

    def make(total: int = 3, body: bytes = b"one,", **extra: str) -> str:
        response = client.post(
            "/messageexchange/ALICE/outbox",
            content=body,
            headers=headers(
                "ALICE", mex_to="BOB", mex_workflowid="WF1", mex_chunk_range=f"1:{total}", **extra
            ),
        )
        assert response.status_code == 202, response.text
        return str(response.json()["message_id"])

    return make


@pytest.fixture
def chunk(client, headers):
    """``chunk(message_id, n, total, body)`` → the response to uploading chunk n (ALICE by default)."""

    def make(
        message_id: str,
        number: int,
        total: int,
        body: bytes = b"data",
        *,
        sender: str = "ALICE",
        v2: bool = True,
        chunk_range: str | None = None,
        **extra: str,
    ):
        sent = headers(sender, v2=v2, **extra)
        if chunk_range is None:
            chunk_range = f"{number}:{total}"
        if chunk_range:
            sent["mex-chunk-range"] = chunk_range
        return client.post(
            f"/messageexchange/{sender}/outbox/{message_id}/{number}", content=body, headers=sent
        )

    return make


def inbox(client, headers) -> list[str]:
    return client.get("/messageexchange/BOB/inbox", headers=headers("BOB")).json()["messages"]


def download(client, headers, message_id: str, number: int = 1):
    return client.get(f"/messageexchange/BOB/inbox/{message_id}/{number}", headers=headers("BOB"))


def test_chunk_upload_response(start, chunk, v2):
    message_id = start()
    response = chunk(message_id, 2, 3, v2=v2)
    assert response.status_code == 202
    assert response.headers["content-type"] == JSON
    expected = {"message_id": message_id} if v2 else {"messageID": message_id, "blockID": 2}
    assert response.json() == expected


def test_message_is_listed_only_when_the_last_chunk_arrives(client, headers, start, chunk):
    message_id = start()
    assert inbox(client, headers) == []
    assert chunk(message_id, 2, 3, b"two,").status_code == 202
    assert inbox(client, headers) == []
    count = client.get("/messageexchange/BOB/count", headers=headers("BOB")).json()
    assert count == {"count": 0}
    assert chunk(message_id, 3, 3, b"three").status_code == 202
    assert inbox(client, headers) == [message_id]
    first = download(client, headers, message_id)
    assert (first.status_code, first.content, first.headers["mex-chunk-range"]) == (206, b"one,", "1:3")
    second = download(client, headers, message_id, 2)
    assert (second.status_code, second.content, second.headers["mex-chunk-range"]) == (206, b"two,", "2:3")
    last = download(client, headers, message_id, 3)
    assert (last.status_code, last.content, last.headers["mex-chunk-range"]) == (200, b"three", "3:3")
    assert last.headers["mex-total-chunks"] == "3"


def test_uploading_message_cannot_be_downloaded(client, headers, start, v2):
    message_id = start()
    response = client.get(f"/messageexchange/BOB/inbox/{message_id}", headers=headers("BOB", v2=v2))
    assert_error(
        response,
        410,
        v2,
        "SEND",
        "Message already accepted",
        "Message no longer available for download",
        message_id,
    )


def test_chunks_may_arrive_out_of_order(client, headers, start, chunk):
    message_id = start(4, b"1")
    assert chunk(message_id, 4, 4, b"4").status_code == 202
    assert chunk(message_id, 2, 4, b"2").status_code == 202
    assert inbox(client, headers) == []
    assert chunk(message_id, 3, 4, b"3").status_code == 202
    assert inbox(client, headers) == [message_id]
    assert [download(client, headers, message_id, n).content for n in range(1, 5)] == [b"1", b"2", b"3", b"4"]


def test_resent_chunk_replaces_the_earlier_bytes(client, headers, start, chunk):
    message_id = start(3, b"a")
    assert chunk(message_id, 2, 3, b"old").status_code == 202
    assert chunk(message_id, 2, 3, b"new!").status_code == 202
    assert chunk(message_id, 3, 3, b"c").status_code == 202
    assert download(client, headers, message_id, 2).content == b"new!"
    tracked = client.get(
        "/messageexchange/ALICE/outbox/tracking",
        params={"messageID": message_id},
        headers=headers("ALICE", v2=False),
    )
    assert tracked.json()["fileSize"] == len(b"a") + len(b"new!") + len(b"c")


def test_message_id_in_path_is_case_insensitive(client, headers, start, chunk):
    message_id = start(2)
    assert chunk(message_id.lower(), 2, 2).status_code == 202
    assert inbox(client, headers) == [message_id]


def test_another_mailbox_cannot_upload_chunks(start, chunk, v2):
    message_id = start()
    response = chunk(message_id, 2, 3, sender="BOB", v2=v2)
    assert_error(response, 403, v2, "", "", "Forbidden", message_id)


def test_chunk_to_a_complete_message_is_423(start, chunk):
    message_id = start(2)
    assert chunk(message_id, 2, 2).status_code == 202
    response = chunk(message_id, 2, 2)
    assert response.status_code == 423
    assert response.json() == GENERIC


def test_chunk_to_a_single_part_message_is_423(send, chunk):
    message_id = send()
    response = chunk(message_id, 2, 2)
    assert response.status_code == 423
    assert response.json() == GENERIC


def test_chunk_number_beyond_the_total_is_406(start, chunk):
    message_id = start(2)
    response = chunk(message_id, 3, 3)
    assert response.status_code == 406
    assert response.json() == GENERIC


def test_changing_the_content_encoding_is_417(start, chunk, v2):
    message_id = start(3, gz(b"one"), content_encoding="gzip")
    response = chunk(message_id, 2, 3, b"plain", v2=v2)
    assert_error(response, 417, v2, "", "", "cannot change content encoding", message_id)
    assert chunk(message_id, 2, 3, gz(b"two"), content_encoding="gzip").status_code == 202


def test_adding_a_content_encoding_is_417(start, chunk, v2):
    message_id = start(2)
    response = chunk(message_id, 2, 2, gz(b"two"), v2=v2, content_encoding="gzip")
    assert_error(response, 417, v2, "", "", "cannot change content encoding", message_id)


BAD_RANGES = [
    "",  # missing
    "3:3",  # names another chunk than the URL
    "1:3",
    "2",
    "x:3",
    "2:1",  # k > n
    "0:3",
    "2:5",  # another total than chunk 1 declared
]


def test_bad_or_mismatched_range_is_417_with_the_message_id(start, chunk, v2):
    message_id = start()
    for chunk_range in BAD_RANGES:
        response = chunk(message_id, 2, 3, v2=v2, chunk_range=chunk_range)
        assert_error(response, 417, v2, "SEND", "InvalidHeaderChunks", BAD_RANGE, message_id)


def test_range_is_checked_before_the_message_is_looked_up(chunk, v2):
    unknown = "20260101000000000000_ABCDEF"
    response = chunk(unknown, 2, 3, v2=v2, chunk_range="x")
    assert_error(response, 417, v2, "SEND", "InvalidHeaderChunks", BAD_RANGE, unknown)


def test_unknown_message_is_404(chunk, v2):
    unknown = "20260101000000000000_ABCDEF"
    assert_error(chunk(unknown, 2, 3, v2=v2), 404, v2, "RECEIVE", "20", "Message does not exist", unknown)


def test_chunk_number_zero_is_a_validation_error(chunk, start):
    message_id = start()
    response = chunk(message_id, 0, 3, chunk_range="1:3")
    assert_validation(
        response,
        {
            "type": "greater_than_equal",
            "loc": ["path", "chunk_no"],
            "msg": "Input should be greater than or equal to 1",
            "input": "0",
        },
    )


def test_chunk_upload_needs_auth(client, start):
    message_id = start()
    response = client.post(
        f"/messageexchange/ALICE/outbox/{message_id}/2", content=b"x", headers={"mex-chunk-range": "2:3"}
    )
    assert response.status_code == 403


def test_empty_chunk_is_stored(client, headers, start, chunk):
    message_id = start(2)
    assert chunk(message_id, 2, 2, b"").status_code == 202
    assert download(client, headers, message_id, 2).content == b""


def test_gzipped_chunks_are_stored_per_chunk(client, headers, send_chunked):
    message_id = send_chunked([b"first ", b"second"], gzipped=True)
    plain = {"accept-encoding": "identity"}
    first = client.get(f"/messageexchange/BOB/inbox/{message_id}", headers={**headers("BOB"), **plain})
    second = client.get(f"/messageexchange/BOB/inbox/{message_id}/2", headers={**headers("BOB"), **plain})
    assert (first.content, second.content) == (b"first ", b"second")
