"""NHS's real ``mesh_client.MeshClient`` against a real Mailroom process over HTTPS on loopback.

Every flow goes through mesh-client 5.0.2's own code paths (token generation, chunking,
transparent gzip, ``links.next`` paging, header parsing, error mapping); only the attacks the
client cannot make (a replayed or stale token, a TLS connection without a certificate) use a
raw httpx client. One server per module; each test starts from ``DELETE /admin/reset``.
"""

from __future__ import annotations

import gzip
import hmac
import os
import ssl
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from mesh_client import AuthTokenGenerator, MeshClient, MeshError
from tests.support.certs import CertBundle, make_pki, ssl_context
from tests.support.server import ServerProcess
from tests.support.targets import SHARED_KEY, TEST_PASSWORD, build_mailroom, nhs_test_workspace

pytestmark = pytest.mark.contract

V2 = "application/vnd.mesh.v2+json"
UNKNOWN_ID = "20240101000000000000_ABCDEF"  # well formed, never issued

Connect = Callable[..., MeshClient]


def _client(base_url: str, pki: CertBundle, mailbox: str, password: str, **options: Any) -> MeshClient:
    """A MeshClient set up as for a real MESH endpoint: mutual TLS, CA pinned, hostname checked."""
    return MeshClient(
        base_url,
        mailbox,
        password,
        shared_key=SHARED_KEY.encode(),
        cert=(str(pki.client_cert), str(pki.client_key)),
        verify=str(pki.ca_cert),
        check_hostname=True,
        hostname_checks_common_name=False,
        **options,
    )


@pytest.fixture
def connect(mailroom: ServerProcess, pki: CertBundle) -> Iterator[Connect]:
    """``connect("ALICE", max_chunk_size=1)`` → a MeshClient on the (reset) Mailroom; closed after."""
    clients: list[MeshClient] = []

    def make(mailbox: str, password: str = TEST_PASSWORD, **options: Any) -> MeshClient:
        client = _client(mailroom.base_url, pki, mailbox, password, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def raw(mailroom: ServerProcess, pki: CertBundle) -> Iterator[httpx.Client]:
    """A plain httpx client on the same server (test CA, client certificate, no auth of its own)."""
    with httpx.Client(
        base_url=mailroom.base_url, verify=ssl_context(pki, client_cert=True), timeout=10
    ) as client:
        yield client


def _token(mailbox: str, at: datetime, *, password: str = TEST_PASSWORD, nonce: str | None = None) -> str:
    """An ``NHSMESH`` token made from the spec's recipe (§2.1), independently of both sides' code."""
    stamp = at.astimezone(UTC).strftime("%Y%m%d%H%M")
    nonce = nonce or str(uuid.uuid4())
    signed = f"{mailbox}:{nonce}:0:{password}:{stamp}".encode()
    digest = hmac.new(SHARED_KEY.encode(), signed, sha256).hexdigest()
    return f"NHSMESH {mailbox}:{nonce}:0:{stamp}:{digest}"


def _now() -> datetime:
    return datetime.now(UTC)


def _status(exc: pytest.ExceptionInfo[requests.HTTPError]) -> int:
    assert exc.value.response is not None
    return exc.value.response.status_code


def _download(client: MeshClient, message_id: str) -> tuple[bytes, Any]:
    message = client.retrieve_message(message_id)
    try:
        return message.read(), message
    finally:
        message.close()


# -- handshake, single send, download with every header, acknowledge, tracking -----------------


def test_ping_and_handshake_for_every_mailbox(connect: Connect) -> None:
    assert connect("ALICE").ping()["status"] == "running"
    for mailbox in ("ALICE", "BOB", "BARRY"):
        assert connect(mailbox).handshake() == b"hello"


def test_single_send_download_exposes_every_metadata_header(connect: Connect) -> None:
    alice, bob = connect("ALICE"), connect("BOB")
    payload = b"id,name\n1,Ada\n"
    metadata: dict[str, Any] = {
        "workflow_id": "RESTRICTED_WORKFLOW",
        "subject": "Weekly extract",
        "local_id": "local-42",
        "filename": "extract.csv",
        "partner_id": "partner-7",
        "checksum": "sha256:" + sha256(payload).hexdigest(),
        "encrypted": True,
        "compressed": True,  # the application's own compression flag: passed through untouched
        "content_type": "text/csv",
    }
    message_id = alice.send_message("BOB", payload, **metadata)

    assert bob.list_messages() == [message_id]
    body, message = _download(bob, message_id)
    assert body == payload
    assert message.id() == message.message_id == message_id
    assert message.message_type == "DATA"
    assert (message.sender, message.recipient) == ("ALICE", "BOB")
    for name, value in metadata.items():
        assert getattr(message, name) == value, name
    assert message.mex_header("chunk-range") == "1:1"
    assert message.mex_header("total-chunks") == "1"
    assert message.mex_header("statussuccess") == "SUCCESS"
    assert message.mex_header("statuscode") == "00"
    assert message.mex_header("statusevent") == "TRANSFER"
    assert message.mex_header("linkedmsgid") is None


def test_flags_are_false_and_file_name_defaults_when_not_sent(connect: Connect) -> None:
    message_id = connect("ALICE").send_message("BOB", b"plain", workflow_id="ANY_WORKFLOW")
    body, message = _download(connect("BOB"), message_id)
    assert body == b"plain"
    assert (message.encrypted, message.compressed) == (False, False)
    assert message.filename == f"{message_id}.dat"
    assert (message.subject, message.local_id, message.partner_id, message.checksum) == (None,) * 4
    assert message.content_type == "application/octet-stream"


def test_acknowledge_and_tracking_accepted_to_acknowledged(connect: Connect) -> None:
    alice, bob, barry = connect("ALICE"), connect("BOB"), connect("BARRY")
    message_id = alice.send_message("BOB", b"track me", workflow_id="WF", local_id="trk-1", filename="t.txt")
    with pytest.deprecated_call():
        assert bob.count_messages() == 1
    for attempt in (barry.retrieve_message, barry.acknowledge_message):  # not BARRY's message
        with pytest.raises(requests.HTTPError) as forbidden:
            attempt(message_id)
        assert _status(forbidden) == 403

    tracked = alice.track_message(message_id)
    assert tracked["message_id"] == message_id
    assert tracked["status"] == "accepted"
    assert (tracked["recipient"], tracked["local_id"], tracked["filename"]) == ("BOB", "trk-1", "t.txt")
    assert tracked["status_success"] is True

    with bob.retrieve_message(message_id) as message:  # leaving the block acknowledges
        assert message.read() == b"track me"

    assert alice.track_message(message_id)["status"] == "acknowledged"
    assert bob.list_messages() == []
    with pytest.deprecated_call():
        assert bob.count_messages() == 0
    with pytest.raises(requests.HTTPError) as gone:
        bob.retrieve_message(message_id)
    assert _status(gone) == 410  # Mailroom's documented default (download_after_ack=gone)
    bob.acknowledge_message(message_id)  # idempotent
    assert alice.track_message(message_id)["status"] == "acknowledged"

    with pytest.raises(requests.HTTPError) as foreign:  # only the sender may track (404, not 403)
        bob.track_message(message_id)
    assert _status(foreign) == 404


def test_tracking_shows_uploading_until_the_last_chunk(connect: Connect) -> None:
    """Drive mesh_client's own send_chunk to stop half way through a two-chunk message."""
    alice, bob = connect("ALICE"), connect("BOB")
    first = alice.send_chunk("BOB", b"first ", chunk_num=1, total_chunks=2, workflow_id="WF")
    assert first.status_code == 202
    message_id = first.json()["message_id"]

    assert alice.track_message(message_id)["status"] == "uploading"
    assert bob.list_messages() == []

    second = alice.send_chunk("BOB", b"second", chunk_num=2, total_chunks=2, message_id=message_id)
    assert second.status_code == 202
    assert alice.track_message(message_id)["status"] == "accepted"
    assert _download(bob, message_id)[0] == b"first second"


# -- chunking and transparent compression ------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "max_chunk_size", "compress"),
    [
        pytest.param(b"chunky!", 1, False, id="1-byte-chunks"),
        pytest.param(b"gzipped", 1, True, id="1-byte-gzip-chunks"),
        pytest.param(os.urandom(3000) + b"x" * 9000, 1000, True, id="12-gzip-chunks"),
        pytest.param(b"y" * 20_000, 75 * 1024 * 1024, True, id="single-gzip"),
    ],
)
def test_chunked_and_compressed_sends_round_trip(
    connect: Connect, raw: httpx.Client, payload: bytes, max_chunk_size: int, compress: bool
) -> None:
    alice = connect("ALICE", max_chunk_size=max_chunk_size, transparent_compress=compress)
    bob = connect("BOB")
    chunks = -(-len(payload) // max_chunk_size)
    message_id = alice.send_message(
        "BOB", payload, workflow_id="WF", subject="chunks", content_type="text/plain"
    )

    assert alice.track_message(message_id)["status"] == "accepted"
    body, message = _download(bob, message_id)
    assert body == payload
    assert message.mex_header("chunk-range") == f"1:{chunks}"
    assert message.mex_header("total-chunks") == str(chunks)
    assert message.content_type == "text/plain"  # Mex-Content-Type survives a multi-chunk send
    # Mailroom marks a gzip-encoded body as compressed, as mesh-sandbox does (spec §6.4)
    assert message.compressed is compress

    details = raw.get(f"/admin/message/{message_id}").json()
    assert details["chunk_count"] == chunks
    assert details["content_encoding"] == ("gzip" if compress else "")

    last = bob.retrieve_message_chunk(message_id, chunks)
    assert last.status_code == 200
    assert last.headers.get("content-encoding") == ("gzip" if compress else None)
    if chunks > 1:  # every chunk but the last is a 206, and each gzip chunk is its own stream
        middle = bob.retrieve_message_chunk(message_id, chunks - 1)
        assert middle.status_code == 206
        piece = middle.raw.read()
        expected = payload[(chunks - 2) * max_chunk_size : (chunks - 1) * max_chunk_size]
        assert (gzip.decompress(piece) if compress else piece) == expected
        middle.close()
    last.close()


def test_gzip_chunks_are_decoded_for_a_client_that_does_not_accept_gzip(
    connect: Connect, raw: httpx.Client
) -> None:
    alice = connect("ALICE", max_chunk_size=4, transparent_compress=True)
    message_id = alice.send_message("BOB", b"abcdefghij", workflow_id="WF")
    pieces = []
    for chunk_no in (1, 2, 3):
        headers = {"authorization": _token("BOB", _now()), "accept": V2}
        headers["accept-encoding"] = "identity"
        response = raw.get(f"/messageexchange/BOB/inbox/{message_id}/{chunk_no}", headers=headers)
        assert response.status_code == (200 if chunk_no == 3 else 206)
        assert "content-encoding" not in response.headers
        pieces.append(response.content)
    assert pieces == [b"abcd", b"efgh", b"ij"]


# -- paging ------------------------------------------------------------------------------------


def test_inbox_paging_returns_every_id_exactly_once(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """501 messages: more than the default page of 500, so the client must follow links.next."""
    alice, bob = connect("ALICE"), connect("BOB")
    sent = [alice.send_message("BOB", f"{n}".encode(), workflow_id="PAGING") for n in range(501)]
    assert len(set(sent)) == 501

    first_page = bob.list_messages()
    assert first_page == sent[:500]  # default page size, oldest first
    assert bob.list_messages(max_results=10) == sent[:10]

    requested: list[str | None] = []
    page = bob._inbox_v2_page

    def spy(url: str | None = None, params: dict[str, Any] | None = None) -> Any:
        requested.append(url)
        return page(url, params)

    monkeypatch.setattr(bob, "_inbox_v2_page", spy)
    assert list(bob.iterate_message_ids()) == sent
    assert len(requested) == 2  # first page, then exactly one links.next
    assert requested[1] is not None
    assert "continue_from=" in requested[1]

    requested.clear()
    assert list(bob.iterate_message_ids(batch_size=100)) == sent
    assert len(requested) == 6  # 5 full pages of 100 and a last page of 1

    requested.clear()
    assert list(bob.iterate_message_ids(workflow_filter="PAGING", batch_size=250)) == sent
    assert list(bob.iterate_message_ids(workflow_filter="!PAGING")) == []


def test_iterate_all_messages_downloads_across_pages(connect: Connect) -> None:
    alice, bob = connect("ALICE"), connect("BOB")
    sent = {
        alice.send_message("BOB", f"m{n}".encode(), workflow_id="WF"): f"m{n}".encode() for n in range(12)
    }
    seen = {}
    for message in bob.iterate_messages(batch_size=10):  # two pages of the v2 list
        with message:
            seen[message.id()] = message.read()
    assert seen == sent
    assert bob.list_messages() == []  # each was acknowledged when its block ended


# -- endpoint lookup ---------------------------------------------------------------------------


def test_endpoint_lookup(connect: Connect) -> None:
    alice = connect("ALICE")
    assert alice.lookup_endpoint("X26", "RESTRICTED_WORKFLOW") == {
        "results": [{"mailbox_id": "BOB", "mailbox_name": "TESTMB2"}]
    }
    assert alice.lookup_endpoint("X27", "ANOTHER_WORKFLOW")["results"] == [
        {"mailbox_id": "BARRY", "mailbox_name": "TESTMB3"}
    ]
    assert alice.lookup_endpoint("X26", "ANOTHER_WORKFLOW")["results"] == [
        {"mailbox_id": "ALICE", "mailbox_name": "TESTMB1"}
    ]
    assert alice.lookup_endpoint("X27", "RESTRICTED_WORKFLOW")["results"] == []
    assert alice.lookup_endpoint("X26", "NO_SUCH_WORKFLOW")["results"] == []


# -- errors ------------------------------------------------------------------------------------


def test_unknown_recipient_is_mesh_error_code_12(connect: Connect, raw: httpx.Client) -> None:
    alice = connect("ALICE")
    with pytest.raises(MeshError) as error:
        alice.send_message("NOBODY", b"lost", workflow_id="WF")
    message, body = error.value.args
    assert message == "Unregistered to address"
    assert body["detail"] == [{"event": "SEND", "code": "12", "msg": "Unregistered to address"}]
    outbox = raw.get("/messageexchange/ALICE/outbox/rich", headers={"authorization": _token("ALICE", _now())})
    assert outbox.json()["messages"] == []  # nothing was created


def test_unknown_message_is_404(connect: Connect) -> None:
    bob = connect("BOB")
    with pytest.raises(requests.HTTPError) as download:
        bob.retrieve_message(UNKNOWN_ID)
    assert _status(download) == 404
    assert download.value.response is not None
    assert download.value.response.json()["detail"][0]["code"] == "20"
    with pytest.raises(requests.HTTPError) as chunk:
        bob.retrieve_message_chunk(UNKNOWN_ID, 2)
    assert _status(chunk) == 404
    with pytest.raises(requests.HTTPError) as ack:
        bob.acknowledge_message(UNKNOWN_ID)
    assert _status(ack) == 404


def test_wrong_password_is_403(connect: Connect) -> None:
    intruder = connect("ALICE", password="not-the-password")
    with pytest.raises(requests.HTTPError) as handshake:
        intruder.handshake()
    assert _status(handshake) == 403
    with pytest.raises(requests.HTTPError) as listing:
        intruder.list_messages()
    assert _status(listing) == 403
    with pytest.raises(MeshError):  # mesh-client maps any error body on send to MeshError
        intruder.send_message("BOB", b"x", workflow_id="WF")
    assert connect("BOB").list_messages() == []


def test_replayed_token_is_403(raw: httpx.Client) -> None:
    """One header, made by mesh-client's own token generator, sent twice."""
    headers = {
        "authorization": AuthTokenGenerator(SHARED_KEY.encode(), "ALICE", TEST_PASSWORD)(),
        "accept": V2,
    }
    first = raw.get("/messageexchange/ALICE/inbox", headers=headers)
    assert first.status_code == 200, first.text
    replay = raw.get("/messageexchange/ALICE/inbox", headers=headers)
    assert replay.status_code == 403
    assert replay.json()["detail"][0]["msg"] == "Error Duplicated Authentication Token"
    # a replay on another endpoint is still a replay
    assert raw.post("/messageexchange/ALICE", headers=headers).status_code == 403


@pytest.mark.parametrize("offset", [timedelta(hours=-3), timedelta(hours=3)], ids=["past", "future"])
def test_stale_timestamp_is_403(raw: httpx.Client, offset: timedelta) -> None:
    now = _now()
    fresh = raw.get("/messageexchange/ALICE/inbox", headers={"authorization": _token("ALICE", now)})
    assert fresh.status_code == 200, fresh.text  # the recipe itself is right
    stale = raw.get("/messageexchange/ALICE/inbox", headers={"authorization": _token("ALICE", now + offset)})
    assert stale.status_code == 403


# -- reports -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["undeliverable", "error"])
def test_admin_report_reads_as_a_report(connect: Connect, raw: httpx.Client, status: str) -> None:
    alice = connect("ALICE")
    original = alice.send_message("BOB", b"never collected", workflow_id="WF", local_id="ndr-1")
    injected = raw.post(
        "/messageexchange/admin/report",
        json={
            "mailbox_id": "ALICE",
            "code": "14",
            "description": "Message not collected by recipient after 5 days",
            "workflow_id": "WF",
            "subject": "about your message",
            "local_id": "ndr-1",
            "status": status,
            "linked_message_id": original,
        },
    )
    assert injected.status_code == 200, injected.text
    report_id = injected.json()["message_id"]

    assert alice.list_messages() == [report_id]
    body, report = _download(alice, report_id)
    assert body == b""
    assert report.message_type == "REPORT"
    assert report.message_id == report_id
    assert report.sender is None  # from the central system, no Mex-From
    assert report.recipient == "ALICE"
    assert (report.workflow_id, report.local_id, report.subject) == ("WF", "ndr-1", "about your message")
    assert report.mex_header("linkedmsgid") == original
    assert report.mex_header("statuscode") == "14"
    assert report.mex_header("statusevent") == "TRANSFER"
    assert report.mex_header("statussuccess") == "ERROR"
    assert report.mex_header("statusdescription") == "Message not collected by recipient after 5 days"
    assert len(report.mex_header("statustimestamp", "")) == 14
    assert report.mex_header("chunk-range") == "1:0"

    alice.acknowledge_message(report_id)
    assert alice.list_messages() == []
    assert alice.track_message(original)["status"] == "accepted"  # the report changes nothing else


# -- mutual TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, pki: CertBundle) -> Iterator[ServerProcess]:
    ws = nhs_test_workspace(tmp_path_factory.mktemp("mailroom-mtls"), pki)
    with build_mailroom(ws, require_client_cert=True) as process:
        yield process


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def _refused(url: str, context: ssl.SSLContext) -> httpx.TransportError:
    """Connect with ``context``: the server must drop the connection without an HTTP answer."""
    with pytest.raises(httpx.TransportError) as refused:
        httpx.get(f"{url}/_ping", verify=context, timeout=10)
    return refused.value


def _tls12(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2, where the server checks the client certificate *inside* the handshake (in TLS 1.3
    the client finishes first and only sees the connection dropped afterwards)."""
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def test_required_client_certificate(mtls_server: ServerProcess, pki: CertBundle, tmp_path: Path) -> None:
    url = mtls_server.base_url
    with _client(url, pki, "ALICE", TEST_PASSWORD) as alice, _client(url, pki, "BOB", TEST_PASSWORD) as bob:
        assert alice.handshake() == b"hello"
        message_id = alice.send_message("BOB", b"over mutual TLS", workflow_id="WF")
        with bob.retrieve_message(message_id) as message:
            assert message.read() == b"over mutual TLS"

    stranger = make_pki(tmp_path / "other-pki")  # a client certificate from a CA the server does not trust
    untrusted = ssl_context(pki)
    untrusted.load_cert_chain(str(stranger.client_cert), str(stranger.client_key))
    for context in (ssl_context(pki), untrusted):
        _refused(url, context)  # TLS 1.3 (default): dropped before any HTTP response
    for context in (_tls12(ssl_context(pki)), _tls12(untrusted)):
        refused = _refused(url, context)
        assert isinstance(refused, httpx.ConnectError)
        assert any(isinstance(cause, ssl.SSLError) for cause in _causes(refused)), repr(refused)

    no_cert = MeshClient(
        url, "ALICE", TEST_PASSWORD, shared_key=SHARED_KEY.encode(), verify=str(pki.ca_cert), max_retries=0
    )
    with no_cert, pytest.raises(requests.exceptions.ConnectionError):  # NHS's client without one, too
        no_cert.handshake()

    ok = httpx.get(f"{url}/_ping", verify=_tls12(ssl_context(pki, client_cert=True)), timeout=10)
    assert ok.status_code == 200
