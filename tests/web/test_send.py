"""Sending a message: ``POST /messageexchange/{mailbox}/outbox`` (spec §5.3, §6.5, §6.6)."""

from __future__ import annotations

import re

import anyio
import anyio.to_thread
import pytest

from ._mesh import JSON, assert_error, assert_validation, gz

OUTBOX = "/messageexchange/ALICE/outbox"
GENERATED_ID = re.compile(r"^\d{20}_[0-9A-F]{6}$")


@pytest.fixture
def post(client, headers):
    """``post(body, v2=..., mex_to=..., ...)``: a send from ALICE (v2 unless told otherwise)."""

    def make(body: bytes = b"hello", *, v2: bool = True, **extra: str):
        return client.post(OUTBOX, content=body, headers=headers("ALICE", v2=v2, **extra))

    return make


def test_send_returns_202_with_the_message_id(post, v2):
    response = post(v2=v2, mex_to="BOB", mex_workflowid="WF1")
    assert response.status_code == 202
    assert response.headers["content-type"] == JSON
    key = "message_id" if v2 else "messageID"
    assert list(response.json()) == [key]
    assert GENERATED_ID.match(response.json()[key])


def test_ids_are_unique(post):
    ids = {post(mex_to="BOB", mex_workflowid="WF1").json()["message_id"] for _ in range(5)}
    assert len(ids) == 5


def test_recipient_and_workflow_are_trimmed_and_recipient_upper_cased(client, post, headers):
    response = post(mex_to="  bob ", mex_workflowid="  test TEST  ")
    assert response.status_code == 202
    got = client.get(f"/messageexchange/BOB/inbox/{response.json()['message_id']}", headers=headers("BOB"))
    assert got.headers["mex-to"] == "BOB"
    assert got.headers["mex-workflowid"] == "test TEST"


def test_sending_to_yourself_is_allowed(post):
    assert post(mex_to="ALICE", mex_workflowid="WF1").status_code == 202


@pytest.mark.parametrize("missing", ["mex-to", "mex-workflowid"])
def test_missing_required_header_is_a_validation_error(post, missing):
    sent = {"mex_to": "BOB", "mex_workflowid": "WF1"}
    del sent[missing.replace("-", "_")]
    response = post(**sent)
    assert_validation(response, {"type": "missing", "loc": ["header", missing], "msg": "Field required"})


def test_missing_header_is_reported_before_malformed_ones(post):
    response = post(mex_workflowid="WF1", mex_subject="bad\x01subject")
    assert_validation(response, {"type": "missing", "loc": ["header", "mex-to"], "msg": "Field required"})


LIMITS = {
    "mex-to": 100,
    "mex-workflowid": 300,
    "mex-chunk-range": 20,
    "mex-subject": 500,
    "mex-localid": 300,
    "mex-partnerid": 500,
    "mex-filename": 300,
    "mex-content-checksum": 100,
    "mex-content-type": 100,
    "mex-content-encrypted": 20,
    "mex-content-compressed": 20,
}


def test_header_longer_than_its_limit_is_a_validation_error(post):
    for name, limit in LIMITS.items():
        sent = {"mex_to": "BOB", "mex_workflowid": "WF1", name.replace("-", "_"): "A" * (limit + 1)}
        assert_validation(
            post(**sent),
            {
                "type": "string_too_long",
                "loc": ["header", name],
                "msg": f"String should have at most {limit} characters",
                "input": "A" * limit,
            },
        )


def test_header_at_its_limit_is_accepted(post):
    response = post(mex_to="BOB", mex_workflowid="W" * 300, mex_subject="S" * 500, mex_localid="L" * 300)
    assert response.status_code == 202


def test_control_characters_are_400_transfer_06(post, v2):
    for name in ["mex-to", "mex-workflowid", "mex-subject", "mex-localid", "mex-partnerid", "mex-filename"]:
        for char in ["\x01", "\x1f", "\t"]:
            sent = {"mex_to": "BOB", "mex_workflowid": "WF1", name.replace("-", "_"): f"a{char}b"}
            assert_error(post(v2=v2, **sent), 400, v2, "TRANSFER", "06", "MalformedControlFile")


def test_url_values_are_400_transfer_06(post, v2):
    for name in ["mex-to", "mex-workflowid", "mex-content-checksum"]:
        for url in ["http://example.org", "HTTPS://example.org/x", " https://example.org"]:
            sent = {"mex_to": "BOB", "mex_workflowid": "WF1", name.replace("-", "_"): url}
            assert_error(post(v2=v2, **sent), 400, v2, "TRANSFER", "06", "MalformedControlFile")


def test_urls_are_allowed_in_other_headers(post):
    assert post(mex_to="BOB", mex_workflowid="WF1", mex_subject="see http://example.org").status_code == 202


def test_bad_checksum_is_400(post, v2):
    for checksum in ["abc#123", "sha256=abc", "md5;x", "a_b"]:
        response = post(v2=v2, mex_to="BOB", mex_workflowid="WF1", mex_content_checksum=checksum)
        assert_error(response, 400, v2, "SEND", "Invalid checksum", "Invalid checksum")


def test_good_checksums_are_accepted(post):
    for checksum in [
        "b10a8db164e0754105b7a99be72e3fe5",
        "sha256:abc",
        "sha256: abc",
        "sha256 - abc",
        "sha256/abc",
    ]:
        response = post(mex_to="BOB", mex_workflowid="WF1", mex_content_checksum=checksum)
        assert response.status_code == 202, checksum


def test_blank_recipient_is_400_send_08(post, v2):
    for blank in ["", "   "]:
        assert_error(post(v2=v2, mex_to=blank, mex_workflowid="WF1"), 400, v2, "SEND", "08", "TO_DTS missing")


def test_content_encoding_other_than_gzip_is_422(post, v2):
    for encoding in ["deflate", "br", "gzip, deflate", "identity"]:
        response = post(v2=v2, mex_to="BOB", mex_workflowid="WF1", content_encoding=encoding)
        assert_error(response, 422, v2, "SEND", "UnsupportedContentEncoding", "Unsupported content encoding")


def test_upper_case_gzip_encoding_is_accepted(post):
    response = post(gz(b"hello"), mex_to="BOB", mex_workflowid="WF1", content_encoding="GZIP")
    assert response.status_code == 202


def test_bad_chunk_range_is_417(post, v2):
    for value in ["2:3", "0:1", "3:2", "1", "1:", ":1", "a:b", "1:2:3", "1:0", "-1:2"]:
        response = post(v2=v2, mex_to="BOB", mex_workflowid="WF1", mex_chunk_range=value)
        assert_error(
            response, 417, v2, "SEND", "InvalidHeaderChunks", "Invalid chunk values in mex-Chunk-Range"
        )


def test_first_chunk_ranges_are_accepted(post):
    for value in ["1:1", " 1:1 ", "1:3", ""]:
        assert post(mex_to="BOB", mex_workflowid="WF1", mex_chunk_range=value).status_code == 202, value


def test_unknown_recipient_is_417_send_12(post, v2):
    response = post(v2=v2, mex_to="NOBODY", mex_workflowid="WF1")
    assert_error(response, 417, v2, "SEND", "12", "Unregistered to address")


def test_empty_body_is_417_collect_02(post, v2):
    response = post(b"", v2=v2, mex_to="BOB", mex_workflowid="WF1")
    assert_error(response, 417, v2, "COLLECT", "02", "Data file is missing or inaccessible.")


def test_mex_from_of_another_mailbox_is_417_send_07(post, v2):
    response = post(v2=v2, mex_to="BOB", mex_workflowid="WF1", mex_from="BOB")
    assert_error(response, 417, v2, "SEND", "07", "Invalid From address")


def test_mex_from_of_the_sender_is_accepted(post):
    for value in ["ALICE", "alice", " ALICE "]:
        assert post(mex_to="BOB", mex_workflowid="WF1", mex_from=value).status_code == 202, value


def test_mex_from_check_can_be_switched_off(make_client, headers):
    relaxed = make_client(check_mex_from=False)
    response = relaxed.post(
        OUTBOX, content=b"x", headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF1", mex_from="BOB")
    )
    assert response.status_code == 202


# -- the order of the checks (spec §5.3): each request breaks two rules, the earlier one wins ------


@pytest.mark.parametrize(
    ("body", "extra", "status", "code"),
    [
        (b"x", {"mex_to": " ", "content_encoding": "br"}, 400, "08"),
        (b"x", {"mex_to": "BOB", "mex_content_checksum": "bad#", "mex_subject": "a\x02"}, 400, "06"),
        (b"x", {"mex_to": " ", "mex_content_checksum": "bad#"}, 400, "Invalid checksum"),
        (
            b"x",
            {"mex_to": "BOB", "content_encoding": "br", "mex_chunk_range": "x"},
            422,
            "UnsupportedContentEncoding",
        ),
        (b"x", {"mex_to": "NOBODY", "mex_chunk_range": "2:2"}, 417, "InvalidHeaderChunks"),
        (b"x", {"mex_to": "NOBODY", "mex_from": "BOB"}, 417, "07"),
        (b"", {"mex_to": "NOBODY"}, 417, "12"),
    ],
)
def test_checks_run_in_mesh_sandbox_order(post, body, extra, status, code):
    response = post(body, mex_workflowid="WF1", **extra)
    assert response.status_code == status, response.text
    assert response.json()["detail"][0]["code"] == code


# -- workflows are not enforced unless configured (spec §5.3, §10.3) ------------------------------


def test_unregistered_workflows_are_accepted_by_default(post):
    assert post(mex_to="BARRY", mex_workflowid="RESTRICTED_WORKFLOW").status_code == 202


def test_workflow_enforcement_when_switched_on(make_client, headers, container):
    strict = make_client(enforce_workflows=True)
    strict_container = strict.app.state.container
    strict_container.mailboxes.import_workflows(
        [{"workflow_id": "RESTRICTED_WORKFLOW", "senders": ["ALICE"], "receivers": ["BOB"]}]
    )

    def send(sender: str, recipient: str):
        return strict.post(
            f"/messageexchange/{sender}/outbox",
            content=b"x",
            headers=headers(sender, mex_to=recipient, mex_workflowid="RESTRICTED_WORKFLOW"),
        )

    assert send("ALICE", "BOB").status_code == 202
    assert_error(
        send("BOB", "ALICE"), 417, True, "SEND", "16", "Sender is not allowed to send messages of this type"
    )
    assert_error(send("ALICE", "BARRY"), 417, True, "SEND", "17", "Workflow ID not registered for mailbox")


# -- metadata travels with the message (spec §6.5) ------------------------------------------------


def test_any_flag_value_is_accepted(post):
    for value in ["Y", "yes", "N", "N/A", ".#!,", "maybe", ""]:
        response = post(
            mex_to="BOB",
            mex_workflowid="WF1",
            mex_content_encrypted=value,
            mex_content_compressed=value,
            mex_content_compress=value,
        )
        assert response.status_code == 202, value


def test_old_v1_headers_are_accepted_and_ignored(post):
    response = post(
        mex_to="BOB",
        mex_workflowid="WF1",
        mex_messagetype="DATA",
        mex_processid="P1",
        mex_content_encoded="Y",
    )
    assert response.status_code == 202


def test_local_id_may_contain_any_printable_characters(client, post, headers):
    response = post(mex_to="BOB", mex_workflowid="WF1", mex_localid="test#TEST %?&")
    assert response.status_code == 202
    got = client.get(f"/messageexchange/BOB/inbox/{response.json()['message_id']}", headers=headers("BOB"))
    assert got.headers["mex-localid"] == "test#TEST %?&"


def test_body_is_stored_byte_for_byte(client, post, headers):
    payload = bytes(range(256)) * 64
    message_id = post(payload, mex_to="BOB", mex_workflowid="WF1").json()["message_id"]
    got = client.get(f"/messageexchange/BOB/inbox/{message_id}", headers=headers("BOB"))
    assert got.content == payload


def test_chunked_transfer_encoding_body_is_accepted(client, headers):
    def body():
        yield b"hello "
        yield b"streamed"

    response = client.post(
        OUTBOX, content=body(), headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF1")
    )
    assert response.status_code == 202
    got = client.get(f"/messageexchange/BOB/inbox/{response.json()['message_id']}", headers=headers("BOB"))
    assert got.content == b"hello streamed"


def test_body_over_the_size_limit_is_rejected(make_client, headers):
    small = make_client(max_chunk_bytes=10)
    response = small.post(
        OUTBOX, content=b"x" * 11, headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF1")
    )
    assert response.status_code == 413
    assert (
        small.post(
            OUTBOX, content=b"x" * 10, headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF1")
        ).status_code
        == 202
    )


def _scope(method: str, path: str, headers: dict[str, str]) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }


def test_slow_uploads_do_not_starve_other_requests(make_client, headers):
    """Streamed bodies wait on the network in worker threads; however many there are, other
    requests (which authenticate in the shared thread pool) must still be answered. The upload
    limit is set above the pool's size, so uploads taking pool threads would starve the rest."""
    client = make_client(max_concurrent_uploads=100, max_uploads_per_mailbox=100)
    uploads = [
        headers("ALICE", mex_to="BOB", mex_workflowid="WF1", transfer_encoding="chunked") for _ in range(60)
    ]
    poll = headers("BOB")

    async def main() -> int:
        release = anyio.Event()
        reading = 0
        status: list[int] = []

        async def slow_body():
            nonlocal reading
            reading += 1
            await release.wait()
            return {"type": "http.request", "body": b"late", "more_body": False}

        async def ignore(message):
            pass

        async def record(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])

        async def no_body():
            return {"type": "http.request", "body": b"", "more_body": False}

        pool = int(anyio.to_thread.current_default_thread_limiter().total_tokens)
        assert pool + 5 <= min(len(uploads), client.app.state.upload_slots.per_owner)
        async with anyio.create_task_group() as group:
            try:
                for sent in uploads[: pool + 5]:
                    group.start_soon(client.app, _scope("POST", OUTBOX, sent), slow_body, ignore)
                with anyio.fail_after(5):
                    while reading < pool:  # every pool thread, before the fix, waits on a body
                        await anyio.wait_all_tasks_blocked()
                    await client.app(_scope("GET", "/messageexchange/BOB/inbox", poll), no_body, record)
            finally:
                release.set()
        return status[0]

    assert anyio.run(main) == 200
