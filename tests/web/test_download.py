"""Download and HEAD: ``GET|HEAD /messageexchange/{mailbox}/inbox/{id}[/{n}]`` (spec §5.8, §6.2, §6.4)."""

from __future__ import annotations

import gzip
import hashlib
from datetime import timedelta
from email.utils import format_datetime

import pytest

from mailroom.settings import AfterAck

from ._mesh import assert_error, assert_validation, gz

GONE = ("SEND", "Message already accepted", "Message no longer available for download")
NO_GZIP = {"accept-encoding": "identity"}
GZIP = {"accept-encoding": "gzip"}
METADATA = {
    "mex_subject": "the subject",
    "mex_localid": "local-1",
    "mex_partnerid": "partner-1",
    "mex_filename": "report.csv",
    "mex_content_checksum": "md5:abc",
    "mex_content_encrypted": "yes",
    "mex_content_compressed": "Y",
    "mex_content_type": "text/csv",
}


def url(message_id: str, chunk: int | None = None) -> str:
    base = f"/messageexchange/BOB/inbox/{message_id}"
    return base if chunk is None else f"{base}/{chunk}"


def raw_get(client, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the body bytes exactly as sent (no transparent gunzip)."""
    with client.stream("GET", path, headers=headers) as response:
        return response.status_code, dict(response.headers), b"".join(response.iter_raw())


def data_headers(message_id: str, clock, **overrides: str) -> dict[str, str]:
    now = clock.now()
    expected = {
        "mex-from": "ALICE",
        "mex-to": "BOB",
        "mex-workflowid": "WF1",
        "mex-chunk-range": "1:1",
        "mex-total-chunks": "1",
        "mex-addresstype": "ALL",
        "mex-localid": "local-1",
        "mex-partnerid": "partner-1",
        "mex-filename": "report.csv",
        "mex-subject": "the subject",
        "mex-version": "1.0",
        "mex-messagetype": "DATA",
        "mex-messageid": message_id,
        "mex-content-compressed": "Y",
        "mex-content-encrypted": "Y",
        "mex-content-checksum": "md5:abc",
        "mex-content-type": "text/csv",
        "mex-statuscode": "00",
        "mex-statusevent": "TRANSFER",
        "mex-statusdescription": "Transferred to recipient mailbox",
        "mex-statussuccess": "SUCCESS",
        "mex-statustimestamp": now.strftime("%Y%m%d%H%M%S"),
        "last-modified": format_datetime(now, usegmt=True),
    }
    expected.update(overrides)
    return {name: value for name, value in expected.items() if value}


def test_download_has_every_mex_header(client, headers, send, clock, v2):
    payload = b"a,b\n1,2\n"
    message_id = send(body=payload, **METADATA)
    response = client.get(url(message_id), headers={**headers("BOB", v2=v2), **NO_GZIP})
    assert response.status_code == 200
    assert response.content == payload
    content_type = "text/csv; charset=utf-8" if v2 else "application/octet-stream"
    assert dict(response.headers) == {
        **data_headers(message_id, clock),
        "content-length": "8",
        "content-type": content_type,
        "etag": f'"{hashlib.sha256(payload).hexdigest()}"',
    }


def test_minimal_message_headers_leave_out_empty_values(client, headers, send, clock):
    message_id = send(body=b"x")
    response = client.get(url(message_id), headers={**headers("BOB"), **NO_GZIP})
    blanks = dict.fromkeys(
        [
            "mex-localid",
            "mex-partnerid",
            "mex-subject",
            "mex-content-compressed",
            "mex-content-encrypted",
            "mex-content-checksum",
            "mex-content-type",
        ],
        "",
    )
    expected = data_headers(message_id, clock, **blanks, **{"mex-filename": f"{message_id}.dat"})
    mex = {
        name: value
        for name, value in response.headers.items()
        if name.startswith("mex-") or name == "last-modified"
    }
    assert mex == expected
    assert response.headers["content-type"] == "application/octet-stream"


def test_content_type_header_is_used_when_there_is_no_mex_content_type(client, headers, send):
    message_id = send(body=b"{}", content_type="application/json")
    response = client.get(url(message_id), headers=headers("BOB"))
    assert response.headers["mex-content-type"] == "application/json"
    assert response.headers["content-type"] == "application/json"


def test_last_modified_is_the_time_of_the_last_event(client, headers, clock):
    started = clock.now()
    first = client.post(
        "/messageexchange/ALICE/outbox",
        content=b"a",
        headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF1", mex_chunk_range="1:2"),
    ).json()["message_id"]
    clock.advance(timedelta(minutes=5))
    client.post(
        f"/messageexchange/ALICE/outbox/{first}/2",
        content=b"b",
        headers=headers("ALICE", mex_chunk_range="2:2"),
    )
    response = client.get(url(first), headers=headers("BOB"))
    assert response.headers["last-modified"] == format_datetime(clock.now(), usegmt=True)
    assert response.headers["mex-statustimestamp"] == clock.now().strftime("%Y%m%d%H%M%S")
    assert response.headers["last-modified"] != format_datetime(started, usegmt=True)


def test_chunks_are_206_until_the_last(client, headers, send_chunked):
    message_id = send_chunked([b"one", b"two", b"three"], mex_content_type="text/plain")
    expected = [(206, b"one", "1:3"), (206, b"two", "2:3"), (200, b"three", "3:3")]
    for number, (status, body, chunk_range) in enumerate(expected, start=1):
        response = client.get(url(message_id, number), headers={**headers("BOB"), **NO_GZIP})
        assert (response.status_code, response.content) == (status, body)
        assert response.headers["mex-chunk-range"] == chunk_range
        assert response.headers["mex-total-chunks"] == "3"
        assert (
            response.headers["content-type"] == "application/octet-stream"
        )  # multi-chunk: never the stored type
        assert response.headers["content-length"] == str(len(body))
    assert client.get(url(message_id), headers=headers("BOB")).content == b"one"


def test_chunk_beyond_the_total_is_404(client, headers, send, v2):
    message_id = send()
    response = client.get(url(message_id, 2), headers=headers("BOB", v2=v2))
    assert_error(response, 404, v2, "RECEIVE", "20", "Message does not exist", message_id)


def test_chunk_zero_is_a_validation_error(client, headers, send):
    response = client.get(url(send(), 0), headers=headers("BOB"))
    assert_validation(
        response,
        {
            "type": "greater_than_equal",
            "loc": ["path", "chunk_no"],
            "msg": "Input should be greater than or equal to 1",
            "input": "0",
        },
    )


def test_unknown_message_is_404(client, headers, v2):
    unknown = "20260101000000000000_ABCDEF"
    response = client.get(url(unknown), headers=headers("BOB", v2=v2))
    assert_error(response, 404, v2, "RECEIVE", "20", "Message does not exist", unknown)


def test_another_mailbox_gets_403(client, headers, send, v2):
    message_id = send()
    response = client.get(f"/messageexchange/BARRY/inbox/{message_id}", headers=headers("BARRY", v2=v2))
    assert_error(response, 403, v2, "", "", "Forbidden", message_id)


def test_the_sender_cannot_download(client, headers, send):
    message_id = send()
    assert (
        client.get(f"/messageexchange/ALICE/inbox/{message_id}", headers=headers("ALICE")).status_code == 403
    )


def test_message_id_is_case_insensitive(client, headers, send):
    message_id = send()
    assert client.get(url(message_id.lower()), headers=headers("BOB")).status_code == 200


# -- after acknowledgement (spec §10.1) -------------------------------------------------------------


def test_acknowledged_message_is_410_by_default(client, headers, send, v2):
    message_id = send()
    client.put(f"{url(message_id)}/status/acknowledged", headers=headers("BOB"))
    assert_error(client.get(url(message_id), headers=headers("BOB", v2=v2)), 410, v2, *GONE, message_id)
    assert client.head(url(message_id), headers=headers("BOB")).status_code == 410


def test_acknowledged_message_downloads_with_download_after_ack_allow(make_client, headers):
    relaxed = make_client(download_after_ack=AfterAck.ALLOW)
    sent = relaxed.post(
        "/messageexchange/ALICE/outbox",
        content=b"again",
        headers=headers("ALICE", mex_to="BOB", mex_workflowid="W"),
    )
    message_id = sent.json()["message_id"]
    assert relaxed.put(f"{url(message_id)}/status/acknowledged", headers=headers("BOB")).status_code == 200
    response = relaxed.get(url(message_id), headers=headers("BOB"))
    assert (response.status_code, response.content) == (200, b"again")
    assert relaxed.head(url(message_id), headers=headers("BOB")).status_code == 200


# -- REPORT messages --------------------------------------------------------------------------------


@pytest.fixture
def report(client):
    def make(**extra: str) -> str:
        body = {
            "mailbox_id": "BOB",
            "code": "14",
            "description": "Message not collected",
            "workflow_id": "WF1",
        }
        response = client.post("/messageexchange/admin/report", json={**body, **extra})
        assert response.status_code == 200, response.text
        return str(response.json()["message_id"])

    return make


def test_report_has_an_empty_body_and_report_headers(client, headers, report, clock, v2):
    linked = "20260101000000000000_ABCDEF"
    message_id = report(status="error", linked_message_id=linked, subject="s", local_id="L1")
    response = client.get(url(message_id), headers=headers("BOB", v2=v2))
    assert response.status_code == 200
    assert response.content == b""
    stamp = clock.now().strftime("%Y%m%d%H%M%S")
    assert dict(response.headers) == {
        "mex-to": "BOB",
        "mex-workflowid": "WF1",
        "mex-chunk-range": "1:0",
        "mex-total-chunks": "0",
        "mex-addresstype": "ALL",
        "mex-localid": "L1",
        "mex-filename": f"{message_id}.dat",
        "mex-subject": "s",
        "mex-version": "1.0",
        "mex-messagetype": "REPORT",
        "mex-messageid": message_id,
        "mex-linkedmsgid": linked,
        "mex-statuscode": "14",
        "mex-statusevent": "TRANSFER",
        "mex-statusdescription": "Message not collected",
        "mex-statussuccess": "ERROR",
        "mex-statustimestamp": stamp,
        "last-modified": format_datetime(clock.now(), usegmt=True),
        "content-length": "0",
        "content-type": "application/octet-stream",
    }


def test_report_head_matches_get(client, headers, report):
    message_id = report()
    got = client.get(url(message_id), headers=headers("BOB"))
    head = client.head(url(message_id), headers=headers("BOB"))
    assert head.status_code == 200
    assert {k: v for k, v in head.headers.items() if k != "content-type"} == {
        k: v for k, v in got.headers.items() if k != "content-type"
    }


# -- compression (spec §6.4) -------------------------------------------------------------------------


def test_gzip_is_passed_through_when_the_client_accepts_it(client, headers, send):
    compressed = gz(b"plain text " * 20)
    message_id = send(body=compressed, content_encoding="gzip")
    status, got, body = raw_get(client, url(message_id), {**headers("BOB"), **GZIP})
    assert status == 200
    assert body == compressed
    assert got["content-encoding"] == "gzip"
    assert got["mex-content-compressed"] == "Y"
    assert got["content-length"] == str(len(compressed))


def test_gzip_is_undone_when_the_client_does_not_accept_it(client, headers, send, v2):
    message_id = send(body=gz(b"plain text " * 20), content_encoding="gzip")
    status, got, body = raw_get(client, url(message_id), {**headers("BOB", v2=v2), **NO_GZIP})
    assert status == 200
    assert body == b"plain text " * 20
    assert "content-encoding" not in got
    assert "mex-content-compressed" not in got


def test_each_gzip_chunk_is_its_own_stream(client, headers, send_chunked):
    message_id = send_chunked([b"first chunk", b"second chunk"], gzipped=True)
    for number, plain in enumerate([b"first chunk", b"second chunk"], start=1):
        _, got, body = raw_get(client, url(message_id, number), {**headers("BOB"), **GZIP})
        assert (body, got["content-encoding"]) == (gz(plain), "gzip")
        _, got, body = raw_get(client, url(message_id, number), {**headers("BOB"), **NO_GZIP})
        assert body == plain


def test_plain_messages_are_not_compressed_by_default(client, headers, send, v2):
    message_id = send(body=b"plain")
    _, got, body = raw_get(client, url(message_id), {**headers("BOB", v2=v2), **GZIP})
    assert body == b"plain"
    assert "content-encoding" not in got


def test_compress_downloads_gzips_plain_chunks_for_v2_only(make_client, headers):
    compressing = make_client(compress_downloads=True)
    sent = compressing.post(
        "/messageexchange/ALICE/outbox",
        content=b"plain" * 50,
        headers=headers("ALICE", mex_to="BOB", mex_workflowid="W"),
    )
    message_id = sent.json()["message_id"]
    _, got, body = raw_get(compressing, url(message_id), {**headers("BOB"), **GZIP})
    assert got["content-encoding"] == "gzip"
    assert got["mex-content-compressed"] == "Y"
    assert gzip.decompress(body) == b"plain" * 50
    _, got, body = raw_get(compressing, url(message_id), {**headers("BOB", v2=False), **GZIP})
    assert "content-encoding" not in got
    assert body == b"plain" * 50


# -- HEAD (spec §5.8) ---------------------------------------------------------------------------------


def test_head_has_the_download_headers_and_no_body(client, headers, send, clock):
    message_id = send(body=b"12345", **METADATA)
    response = client.head(url(message_id), headers=headers("BOB"))
    assert response.status_code == 200
    assert response.content == b""
    assert dict(response.headers) == {**data_headers(message_id, clock), "content-length": "0"}


def test_head_of_a_chunked_message_reports_chunk_one(client, headers, send_chunked):
    message_id = send_chunked([b"a", b"b", b"c"])
    response = client.head(url(message_id), headers=headers("BOB"))
    assert (response.headers["mex-chunk-range"], response.headers["mex-total-chunks"]) == ("1:3", "3")


def test_head_rules_while_uploading(client, headers):
    sent = client.post(
        "/messageexchange/ALICE/outbox",
        content=b"a",
        headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF1", mex_chunk_range="1:2"),
    )
    message_id = sent.json()["message_id"]
    assert (
        client.head(f"/messageexchange/ALICE/inbox/{message_id}", headers=headers("ALICE")).status_code == 200
    )
    assert client.head(url(message_id), headers=headers("BOB")).status_code == 410
    assert (
        client.head(f"/messageexchange/BARRY/inbox/{message_id}", headers=headers("BARRY")).status_code == 404
    )


def test_head_by_the_sender_works_in_any_status(client, headers, send):
    message_id = send()
    client.put(f"{url(message_id)}/status/acknowledged", headers=headers("BOB"))
    response = client.head(f"/messageexchange/ALICE/inbox/{message_id}", headers=headers("ALICE"))
    assert response.status_code == 200
    assert response.headers["mex-messageid"] == message_id


def test_head_of_an_unknown_message_is_404(client, headers):
    assert client.head(url("20260101000000000000_ABCDEF"), headers=headers("BOB")).status_code == 404


def test_head_of_a_gzip_message_names_the_encoding(client, headers, send):
    message_id = send(body=gz(b"x"), content_encoding="gzip")
    assert client.head(url(message_id), headers=headers("BOB")).headers["content-encoding"] == "gzip"


def test_download_needs_auth(client, send):
    message_id = send()
    assert client.get(url(message_id)).status_code == 403
    assert client.head(url(message_id)).status_code == 403


def test_gzip_with_several_members_is_undone_completely(client, headers, send):
    """RFC 1952 lets a gzip file hold several members (``cat a.gz b.gz``); all are decoded."""
    stored = gz(b"first member, ") + gz(b"second member")
    message_id = send(body=stored, content_encoding="gzip")
    status, _, body = raw_get(client, url(message_id), {**headers("BOB"), **NO_GZIP})
    assert (status, body) == (200, b"first member, second member")
