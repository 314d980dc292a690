"""mesh-sandbox's test-control endpoints (spec §5.14): at both prefixes, only with ``sandbox=True``."""

from __future__ import annotations

import json
from datetime import timedelta

import anyio
import pytest

from ._mesh import assert_error

PREFIXES = ["", "/messageexchange"]
ALICE_DETAILS = {
    "mailbox_id": "ALICE",
    "mailbox_name": "TESTMB1",
    "billing_entity": "England",
    "ods_code": "X26",
    "org_code": "X26",
    "org_name": "",
    "active": True,
}
REPORT = {"mailbox_id": "BOB", "code": "14", "description": "not collected", "workflow_id": "WF1"}


def inbox(client, headers, mailbox: str = "BOB") -> list[str]:
    return client.get(f"/messageexchange/{mailbox}/inbox", headers=headers(mailbox)).json()["messages"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_reset_everything(client, headers, send, prefix):
    send()
    send("BOB", "BARRY")
    response = client.delete(f"{prefix}/admin/reset")
    assert response.status_code == 200
    assert response.json() == {"message": "all mailboxes reset"}
    assert inbox(client, headers) == []
    assert inbox(client, headers, "BARRY") == []
    assert client.get("/messageexchange/ALICE/inbox", headers=headers("ALICE")).status_code == 200


def test_reset_ignores_extra_query_parameters(client):
    assert client.delete("/admin/reset", params={"clear_disk": "true"}).status_code == 200


@pytest.mark.parametrize("prefix", PREFIXES)
def test_reset_one_mailbox(client, headers, send, prefix):
    send()
    kept = send("BOB", "BARRY")
    other = send("ALICE", "BARRY")
    response = client.delete(f"{prefix}/admin/reset/ALICE")
    assert response.status_code == 200
    assert response.json() == {"message": "mailbox ALICE reset"}
    assert inbox(client, headers) == []
    assert other not in inbox(client, headers, "BARRY")
    assert kept in inbox(client, headers, "BARRY")


@pytest.mark.parametrize("prefix", PREFIXES)
def test_reset_of_an_unknown_mailbox_is_404(client, prefix):
    assert_error(client.delete(f"{prefix}/admin/reset/NOBODY"), 404, False, "", "", "mailbox does not exist")


def test_report_is_put_in_the_inbox(client, headers):
    response = client.post("/messageexchange/admin/report", json=REPORT)
    assert response.status_code == 200
    message_id = response.json()["message_id"]
    assert list(response.json()) == ["message_id"]
    assert inbox(client, headers) == [message_id]
    got = client.get(f"/messageexchange/BOB/inbox/{message_id}", headers=headers("BOB"))
    assert (got.headers["mex-messagetype"], got.headers["mex-statuscode"]) == ("REPORT", "14")


def test_report_exists_only_under_messageexchange(client):
    assert client.post("/admin/report", json=REPORT).status_code == 404


def test_report_for_an_unknown_mailbox_is_404(client):
    response = client.post("/messageexchange/admin/report", json={**REPORT, "mailbox_id": "NOBODY"})
    assert_error(response, 404, False, "", "", "mailbox does not exist")


def test_report_without_a_required_field_is_400(client):
    body = {key: value for key, value in REPORT.items() if key != "code"}
    response = client.post("/messageexchange/admin/report", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "detail": [{"type": "missing", "loc": ["body", "code"], "msg": "Field required"}]
    }


@pytest.mark.parametrize("text", ["price \u20ac5", "two\r\nx-injected: lines", "nul\x00", "newline\n"])
@pytest.mark.parametrize("field", ["subject", "description", "local_id"])
def test_report_text_that_cannot_be_a_header_is_400(client, headers, field, text):
    """Report fields come back as Mex-* response headers: they must be printable Latin-1."""
    response = client.post("/messageexchange/admin/report", json={**REPORT, field: text})
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert inbox(client, headers) == []


def test_event_text_that_cannot_be_a_header_is_400(client, send):
    message_id = send()
    body = {"status": "error", "description": "bad \u20ac"}
    response = client.post(f"/messageexchange/admin/message/{message_id}/event", json=body)
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["body", "description"]


def test_report_with_another_status_is_400(client):
    response = client.post("/messageexchange/admin/report", json={**REPORT, "status": "accepted"})
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["body", "status"]


@pytest.mark.parametrize("declared", [None, str(10 * 1024 * 1024)], ids=["streamed", "content-length"])
def test_oversized_json_body_is_refused_without_reading_it_all(client, declared):
    """The endpoints have no authentication: an endless body must not fill the server's memory."""
    pulled = 0

    async def receive():
        nonlocal pulled
        pulled += 1
        if pulled > 8:  # 8 x 64 KiB: far past the 64 KiB the endpoints accept
            raise AssertionError("the server kept reading an oversized body")
        return {"type": "http.request", "body": b" " * 65536, "more_body": True}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    headers = [(b"content-type", b"application/json")]
    if declared:
        headers.append((b"content-length", declared.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/messageexchange/admin/report",
        "raw_path": b"/messageexchange/admin/report",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    anyio.run(client.app, scope, receive, send)
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["detail"][0]["msg"] == "body too large"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_message_event_changes_the_status(client, headers, send, prefix):
    message_id = send()
    client.put(f"/messageexchange/BOB/inbox/{message_id}/status/acknowledged", headers=headers("BOB"))
    assert inbox(client, headers) == []
    response = client.post(f"{prefix}/admin/message/{message_id}/event", json={"status": "accepted"})
    assert response.status_code == 200
    assert response.content == b""
    assert inbox(client, headers) == [message_id]


def test_error_event_shows_in_tracking(client, headers, send):
    message_id = send()
    event = {"status": "error", "code": "99", "event": "TRANSFER", "description": "broken"}
    assert client.post(f"/admin/message/{message_id}/event", json=event).status_code == 200
    tracked = client.get(
        "/messageexchange/ALICE/outbox/tracking",
        params={"messageID": message_id},
        headers=headers("ALICE", v2=False),
    ).json()
    assert (tracked["status"], tracked["statusSuccess"], tracked["failureDiagnostic"]) == (
        "Error",
        "ERROR",
        "broken",
    )


@pytest.mark.parametrize("prefix", PREFIXES)
def test_message_event_for_an_unknown_message_is_404(client, prefix):
    response = client.post(
        f"{prefix}/admin/message/20260101000000000000_ABCDEF/event", json={"status": "accepted"}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "path", ["/admin/mailbox", "/messageexchange/admin/mailbox", "/messageexchange/mailbox"]
)
def test_mailbox_details(client, path):
    response = client.get(f"{path}/ALICE")
    assert response.status_code == 200
    assert response.json() == ALICE_DETAILS


@pytest.mark.parametrize("path", ["/admin/mailbox", "/messageexchange/mailbox"])
def test_mailbox_details_of_an_unknown_mailbox_is_404(client, path):
    assert client.get(f"{path}/NOBODY").status_code == 404


@pytest.mark.parametrize("prefix", PREFIXES)
def test_message_details(client, send, clock, prefix):
    message_id = send(body=b"12345")
    now = clock.now().replace(tzinfo=None)
    response = client.get(f"{prefix}/admin/message/{message_id}")
    assert response.status_code == 200
    assert response.json() == {
        "checksum": "",
        "chunk_count": 1,
        "content_encoding": "",
        "expiry_time": (now + timedelta(days=5)).isoformat(),
        "filename": f"{message_id}.dat",
        "file_size": 5,
        "is_compressed": False,
        "is_encrypted": False,
        "local_id": "",
        "message_id": message_id,
        "message_type": "Data",
        "recipient": "BOB",
        "recipient_name": "TESTMB2",
        "recipient_ods_code": "X26",
        "recipient_org_code": "X26",
        "recipient_org_name": "",
        "sender": "ALICE",
        "sender_name": "TESTMB1",
        "sender_ods_code": "X26",
        "sender_org_code": "X26",
        "sender_org_name": "",
        "status": "Accepted",
        "status_success": "SUCCESS",
        "status_timestamp": now.isoformat(),
        "subject": "",
        "upload_timestamp": now.isoformat(),
        "workflow_id": "WF1",
    }


def test_message_details_of_an_unknown_message_is_404(client):
    assert client.get("/admin/message/20260101000000000000_ABCDEF").status_code == 404


# -- without sandbox=True none of this exists -----------------------------------------------------------


SANDBOX_ROUTES = [
    ("DELETE", "/admin/reset"),
    ("DELETE", "/messageexchange/admin/reset"),
    ("DELETE", "/admin/reset/ALICE"),
    ("DELETE", "/messageexchange/admin/reset/ALICE"),
    ("POST", "/messageexchange/admin/report"),
    ("POST", "/admin/message/20260101000000000000_ABCDEF/event"),
    ("POST", "/messageexchange/admin/message/20260101000000000000_ABCDEF/event"),
    ("GET", "/admin/mailbox/ALICE"),
    ("GET", "/messageexchange/admin/mailbox/ALICE"),
    ("GET", "/messageexchange/mailbox/ALICE"),
    ("GET", "/admin/message/20260101000000000000_ABCDEF"),
    ("GET", "/messageexchange/admin/message/20260101000000000000_ABCDEF"),
]


def test_admin_endpoints_are_absent_without_sandbox(make_client):
    production = make_client(sandbox=False)
    for method, path in SANDBOX_ROUTES:
        response = production.request(method, path, json={"status": "accepted", **REPORT})
        assert response.status_code == 404, (method, path)
        assert response.json() == {"detail": "Not Found"}
