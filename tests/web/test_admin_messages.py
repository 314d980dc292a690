"""The administration API's message and workflow functions, over HTTP in-process, on both
stacks: searching with every filter, details without payloads, re-injecting an expired message
(and the refusals), deleting, and workflow registrations the MESH face obeys at once."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.web.test_admin_api import ROOT, VIEWER, call

from mailroom.domain.admin import Privilege
from mailroom.web.app import create_app

BIG = bytes(range(256)) * 1024  # 256 KiB: stored in the payload store, not in the row


@pytest.fixture
def settings(settings):
    """The administration API on, and workflows enforced on the MESH face."""
    return settings.replace(admin_api=True, enforce_workflows=True)


@pytest.fixture
def api(settings, container):
    container.admin_users.add(*ROOT)
    container.admin_users.add(*VIEWER, privilege=Privilege.READ)
    with TestClient(create_app(settings, container)) as client:
        yield client


@pytest.fixture
def client(api):
    """The ``send`` fixtures post through the admin-enabled app."""
    return api


def result(response) -> Any:
    body = response.json()
    assert body["statusCode"] == "succeeded", body
    return body["result"]


def failure(response) -> str:
    body = response.json()
    assert body["statusCode"] == "failed", body
    return str(body["error"]["message"])


def test_get_messages_filters_and_pages_newest_first(api, send, clock):
    first = send("ALICE", "BOB", b"one", mex_workflowid="WF_A", mex_localid="L1")
    clock.advance(timedelta(minutes=1))
    second = send("BOB", "ALICE", b"two", mex_workflowid="WF_B", mex_localid="L2")
    clock.advance(timedelta(minutes=1))
    third = send("ALICE", "BARRY", BIG, mex_workflowid="WF_A")

    everything = result(call(api, "GetMessages", user=VIEWER))
    assert everything["total"] == 3
    assert [m["messageId"] for m in everything["messages"]] == [third, second, first]
    record = everything["messages"][0]
    assert record["fileSize"] == len(BIG)
    assert record["sender"] == "ALICE"
    assert record["recipient"] == "BARRY"
    assert "data" not in record
    assert "payload" not in record

    def ids(**filters: str) -> list[str]:
        return [m["messageId"] for m in result(call(api, "GetMessages", filters))["messages"]]

    assert ids(mailboxId="alice") == [third, second, first]
    assert ids(mailboxId="ALICE", direction="out") == [third, first]
    assert ids(mailboxId="ALICE", direction="in") == [second]
    assert ids(workflowId="WF_A") == [third, first]
    assert ids(localId="L2") == [second]
    assert ids(status="accepted") == [third, second, first]
    assert ids(status="acknowledged") == []
    since = (clock.now() - timedelta(seconds=90)).isoformat()
    assert ids(**{"from": since}) == [third, second]
    assert ids(to=since) == [first]
    assert ids(limit="1", offset="1") == [second]
    assert result(call(api, "GetMessages", {"limit": "1"}))["total"] == 3


@pytest.mark.parametrize(
    ("filters", "words"),
    [
        ({"direction": "in"}, "needs mailboxId"),
        ({"mailboxId": "ALICE", "direction": "sideways"}, "in or out"),
        ({"status": "lost"}, "status is one of"),
        ({"from": "yesterday"}, "ISO 8601"),
        ({"from": "2026-01-01T10:00:00"}, "time zone"),
        ({"mailboxId": "no/such"}, "mailbox id"),
    ],
)
def test_get_messages_refuses_bad_filters(api, filters, words):
    assert words in failure(call(api, "GetMessages", filters))


def test_message_details_give_history_and_chunks_never_the_payload(api, send_chunked, headers):
    message_id = send_chunked([BIG, b"ZQXJ"], "ALICE", "BOB", mex_localid="CHUNKY")
    acked = api.put(f"/messageexchange/BOB/inbox/{message_id}/status/acknowledged", headers=headers("BOB"))
    assert acked.status_code == 200
    details = result(call(api, "GetMessageDetails", {"messageId": message_id.lower()}, user=VIEWER))
    assert details["messageId"] == message_id
    assert details["localId"] == "CHUNKY"
    assert details["totalChunks"] == 2
    assert [(c["chunkNo"], c["size"]) for c in details["chunks"]] == [(1, len(BIG)), (2, 4)]
    assert details["chunks"][0]["sha256"] == hashlib.sha256(BIG).hexdigest()
    assert details["chunks"][1]["inRow"] is True
    assert details["status"] == "acknowledged"
    statuses = [event["status"] for event in details["history"]]
    assert statuses[-1] == "acknowledged"
    assert "accepted" in statuses
    assert "ZQXJ" not in str(details)  # no payload bytes anywhere
    assert "does not exist" in failure(
        call(api, "GetMessageDetails", {"messageId": "20990101000000000000_ABCDEF"})
    )


def expire(container, clock) -> None:
    clock.advance(container.settings.inbox_retention + timedelta(minutes=1))
    assert container.maintenance.sweep(orphans=False).expired


def test_an_expired_message_is_reinjected_into_its_recipients_inbox(api, send, container, clock, headers):
    message_id = send("ALICE", "BOB", BIG)
    expire(container, clock)
    assert result(call(api, "GetMessages", {"status": "undeliverable"}))["total"] == 1

    again = result(call(api, "ReinjectMessage", {"messageId": message_id}))
    assert again["status"] == "accepted"
    assert again["inboxExpires"] is not None
    inbox = api.get("/messageexchange/BOB/inbox", headers=headers("BOB"))
    assert message_id in inbox.json()["messages"]
    download = api.get(f"/messageexchange/BOB/inbox/{message_id}", headers=headers("BOB"))
    assert download.status_code == 200
    assert download.content == BIG
    history = result(call(api, "GetMessageDetails", {"messageId": message_id}))["history"]
    assert [e["status"] for e in history][-2:] == ["undeliverable", "accepted"]
    assert "Reinjected by administrator root" in history[-1]["description"]
    # the fresh expiry holds: a sweep now leaves it in the inbox
    assert message_id not in container.maintenance.sweep(orphans=False).expired


def test_reinjecting_is_refused_when_not_expired_or_purged(api, send, container, clock):
    waiting = send("ALICE", "BOB", b"still waiting")
    assert "only an undeliverable" in failure(call(api, "ReinjectMessage", {"messageId": waiting}))
    expire(container, clock)
    clock.advance(container.settings.payload_retention + timedelta(minutes=1))
    assert container.maintenance.sweep(orphans=False).purged
    refused = failure(call(api, "ReinjectMessage", {"messageId": waiting}))
    assert "payload was purged" in refused
    assert "does not exist" in failure(call(api, "ReinjectMessage", {"messageId": "nope"}))
    assert result(call(api, "GetMessageDetails", {"messageId": waiting}))["status"] == "undeliverable"
    assert call(api, "ReinjectMessage", {"messageId": waiting}, user=VIEWER).status_code == 403


def test_a_report_is_never_reinjected(api, send, container, clock):
    send("ALICE", "BOB", b"x")
    expire(container, clock)
    report = result(call(api, "GetMessages", {"mailboxId": "ALICE", "direction": "in"}))["messages"][0]
    assert report["messageType"] == "REPORT"
    assert "report" in failure(call(api, "ReinjectMessage", {"messageId": report["messageId"]}))


def test_delete_message_removes_rows_and_payloads_but_not_an_upload(
    api, send, send_chunked, container, headers
):
    message_id = send("ALICE", "BOB", BIG)
    deleted = result(call(api, "DeleteMessage", {"messageId": message_id}))
    assert deleted == {"messageId": message_id, "payloadsDeleted": True}
    assert "does not exist" in failure(call(api, "GetMessageDetails", {"messageId": message_id}))
    assert message_id not in set(container.payloads.message_ids())
    assert api.get(f"/messageexchange/BOB/inbox/{message_id}", headers=headers("BOB")).status_code in (
        404,
        410,
    )

    first = api.post(
        "/messageexchange/ALICE/outbox",
        content=BIG,
        headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF1", mex_chunk_range="1:2"),
    )
    uploading = first.json()["message_id"]
    assert "being uploaded" in failure(call(api, "DeleteMessage", {"messageId": uploading}))
    assert result(call(api, "GetMessageDetails", {"messageId": uploading}))["status"] == "uploading"


def test_workflows_are_listed_added_and_removed_and_the_mesh_face_obeys(api, headers):
    listed = result(call(api, "GetWorkflows", user=VIEWER))
    assert {"workflowId": "RESTRICTED_WORKFLOW", "senders": ["ALICE"], "receivers": ["BOB"]} in listed

    def send_restricted(sender: str) -> int:
        return api.post(
            f"/messageexchange/{sender}/outbox",
            content=b"x",
            headers=headers(sender, mex_to="BOB", mex_workflowid="RESTRICTED_WORKFLOW"),
        ).status_code

    assert send_restricted("BARRY") == 417  # MESH: sender not registered
    added = result(call(api, "AddWorkflow", {"workflowId": "RESTRICTED_WORKFLOW", "senders": '["barry"]'}))
    assert added == {
        "added": 1,
        "workflowId": "RESTRICTED_WORKFLOW",
        "senders": ["ALICE", "BARRY"],
        "receivers": ["BOB"],
    }
    assert send_restricted("BARRY") == 202
    again = call(api, "AddWorkflow", {"workflowId": "RESTRICTED_WORKFLOW", "senders": '["BARRY"]'})
    assert result(again)["added"] == 0

    assert "does not exist" in failure(
        call(api, "AddWorkflow", {"workflowId": "W", "receivers": '["NOBODY"]'})
    )
    assert "JSON list" in failure(call(api, "AddWorkflow", {"workflowId": "W", "receivers": '"BOB"'}))
    assert "senders or receivers" in failure(call(api, "AddWorkflow", {"workflowId": "W"}))
    assert result(call(api, "GetWorkflows", {"workflowId": "W"})) == []

    assert result(call(api, "RemoveWorkflow", {"workflowId": "RESTRICTED_WORKFLOW"})) == {"removed": 3}
    assert result(call(api, "GetWorkflows", {"workflowId": "RESTRICTED_WORKFLOW"})) == []
    assert "not registered" in failure(call(api, "RemoveWorkflow", {"workflowId": "RESTRICTED_WORKFLOW"}))
    assert call(api, "AddWorkflow", {"workflowId": "X", "senders": '["BOB"]'}, user=VIEWER).status_code == 403
