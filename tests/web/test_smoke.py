"""One send → list → download → acknowledge round trip through the in-process app."""

from __future__ import annotations


def test_send_list_download_acknowledge(client, headers):
    sent = client.post(
        "/messageexchange/ALICE/outbox",
        content=b"hello bob",
        headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF1", mex_subject="hi"),
    )
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["message_id"]

    listed = client.get("/messageexchange/BOB/inbox", headers=headers("BOB"))
    assert listed.status_code == 200
    assert listed.json()["messages"] == [message_id]
    assert listed.json()["approx_inbox_count"] == 1

    got = client.get(f"/messageexchange/BOB/inbox/{message_id}", headers=headers("BOB"))
    assert got.status_code == 200
    assert got.content == b"hello bob"
    assert got.headers["mex-from"] == "ALICE"
    assert got.headers["mex-subject"] == "hi"
    assert got.headers["mex-chunk-range"] == "1:1"

    acked = client.put(f"/messageexchange/BOB/inbox/{message_id}/status/acknowledged", headers=headers("BOB"))
    assert acked.status_code == 200
    assert client.get("/messageexchange/BOB/inbox", headers=headers("BOB")).json()["messages"] == []
