"""Rich inbox and outbox (mesh-sandbox only, spec §5.6): every status, newest first, v2 shape always."""

from __future__ import annotations

import base64
import json
from datetime import timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from ._mesh import V2_TYPE

RICH_INBOX = "/messageexchange/BOB/inbox/rich"
RICH_OUTBOX = "/messageexchange/ALICE/outbox/rich"


def iso(value) -> str:
    return value.replace(tzinfo=None).isoformat()


def query(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query)


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_rich_inbox_item_shape(client, headers, send, clock, v2):
    sent_at = clock.now()
    message_id = send()
    response = client.get(RICH_INBOX, headers=headers("BOB", v2=v2))
    assert response.status_code == 200
    assert response.headers["content-type"] == V2_TYPE
    body = response.json()
    assert set(body) == {"valid_at", "messages", "links"}
    assert body["valid_at"] == iso(clock.now())
    assert body["messages"] == [
        {
            "message_id": message_id,
            "expiry_timestamp": iso(sent_at + timedelta(days=5)),
            "message_type": "DATA",
            "recipient": "BOB",
            "recipient_name": "TESTMB2",
            "sender": "ALICE",
            "sender_name": "TESTMB1",
            "sent_date": iso(sent_at),
            "status": "accepted",
            "workflow_id": "WF1",
            "total_chunks": 1,
        }
    ]


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_rich_outbox_item_shape(client, headers, send, clock, v2):
    sent_at = clock.now()
    message_id = send()
    response = client.get(RICH_OUTBOX, headers=headers("ALICE", v2=v2))
    assert response.status_code == 200
    assert response.headers["content-type"] == V2_TYPE
    assert response.json()["messages"] == [
        {
            "message_id": message_id,
            "expiry_timestamp": iso(sent_at + timedelta(days=5)),
            "local_id": "",
            "message_type": "DATA",
            "recipient": "BOB",
            "recipient_name": "TESTMB2",
            "sender": "ALICE",
            "sender_name": "TESTMB1",
            "sent_date": iso(sent_at),
            "status": "accepted",
            "status_code": "",
            "workflow_id": "WF1",
            "total_chunks": 1,
        }
    ]


def test_rich_inbox_lists_every_status_newest_first(client, headers, send_many):
    uploading = send_many(1, mex_chunk_range="1:2")[0]
    acked, accepted = send_many(2)
    client.put(f"/messageexchange/BOB/inbox/{acked}/status/acknowledged", headers=headers("BOB"))
    body = client.get(RICH_INBOX, headers=headers("BOB")).json()
    statuses = [(item["message_id"], item["status"]) for item in body["messages"]]
    assert statuses == [(accepted, "accepted"), (acked, "acknowledged"), (uploading, "uploading")]


def test_rich_outbox_lists_sent_messages_only(client, headers, send_many, send):
    ids = send_many(2)
    send("BOB", "ALICE")
    body = client.get(RICH_OUTBOX, headers=headers("ALICE")).json()
    assert [item["message_id"] for item in body["messages"]] == ids[::-1]


def test_rich_views_default_to_the_last_30_days(client, headers, send, clock):
    old = send()
    clock.advance(timedelta(days=31))
    recent = send()
    for path, mailbox in ((RICH_INBOX, "BOB"), (RICH_OUTBOX, "ALICE")):
        body = client.get(path, headers=headers(mailbox)).json()
        assert [item["message_id"] for item in body["messages"]] == [recent]
        assert query(body["links"]["self"])["start_time"] == [iso(clock.now() - timedelta(days=30))]
    since = iso(clock.now() - timedelta(days=40))
    body = client.get(RICH_INBOX, params={"start_time": since}, headers=headers("BOB")).json()
    assert [item["message_id"] for item in body["messages"]] == [recent, old]


def test_rich_inbox_pages_follow_links(client, headers, send_many):
    ids = send_many(5)
    first = client.get(RICH_INBOX, params={"max_results": "2"}, headers=headers("BOB")).json()
    assert [item["message_id"] for item in first["messages"]] == ids[:2:-1]
    assert first["links"]["self"].startswith(f"{RICH_INBOX}?")
    assert query(first["links"]["self"])["max_results"] == ["2"]
    seen = [item["message_id"] for item in first["messages"]]
    link = first["links"].get("next")
    while link:
        assert link.startswith(f"{RICH_INBOX}?")
        page = client.get(link, headers=headers("BOB")).json()
        seen += [item["message_id"] for item in page["messages"]]
        link = page["links"].get("next")
    assert seen == ids[::-1]


def test_rich_outbox_caps_pages_at_100(client, headers, send):
    response = client.get(RICH_OUTBOX, params={"max_results": "5000"}, headers=headers("ALICE"))
    assert response.status_code == 200
    assert query(response.json()["links"]["self"])["max_results"] == ["100"]


def test_rich_max_results_bounds(client, headers):
    for path, mailbox, value in [
        (RICH_INBOX, "BOB", "0"),
        (RICH_INBOX, "BOB", "2001"),
        (RICH_OUTBOX, "ALICE", "9"),
        (RICH_OUTBOX, "ALICE", "5001"),
    ]:
        response = client.get(path, params={"max_results": value}, headers=headers(mailbox))
        assert response.status_code == 400, (path, value)
        assert response.json()["detail"][0]["loc"] == ["query", "max_results"]


def test_rich_start_time_must_be_iso(client, headers):
    response = client.get(RICH_INBOX, params={"start_time": "yesterday"}, headers=headers("BOB"))
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["query", "start_time"]


def test_rich_views_need_auth(client):
    assert client.get(RICH_INBOX).status_code == 403
    assert client.get(RICH_OUTBOX).status_code == 403


def test_start_time_with_an_offset_is_read_as_that_instant(client, headers, send_many, clock):
    ids = send_many(3)
    east = timezone(timedelta(hours=5))
    start = (clock.now() - timedelta(hours=1)).astimezone(east).isoformat()
    first = client.get(RICH_INBOX, params={"start_time": start, "max_results": "1"}, headers=headers("BOB"))
    assert query(first.json()["links"]["self"])["start_time"] == [iso(clock.now() - timedelta(hours=1))]
    second = client.get(first.json()["links"]["next"], headers=headers("BOB")).json()
    assert [item["message_id"] for item in second["messages"]] == [ids[1]]


@pytest.mark.parametrize("start", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_start_time_outside_the_representable_range_is_a_validation_error(client, headers, start):
    response = client.get(RICH_INBOX, params={"start_time": start}, headers=headers("BOB"))
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["query", "start_time"]


@pytest.mark.parametrize("path", [RICH_INBOX, "/messageexchange/BOB/inbox"])
def test_forged_continue_from_with_an_unrepresentable_time_is_a_validation_error(client, headers, path):
    raw = json.dumps({"t": "0001-01-01T00:00:00+01:00", "m": "20260101000000000000_ABCDEF"})
    token = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    response = client.get(path, params={"continue_from": token}, headers=headers("BOB"))
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["query", "continue_from"]
