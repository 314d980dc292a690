"""Acknowledge: ``PUT /messageexchange/{mailbox}/inbox/{id}/status/acknowledged`` (spec §5.9)."""

from __future__ import annotations

from ._mesh import JSON, assert_error


def ack(client, headers, message_id: str, mailbox: str = "BOB", v2: bool = True):
    return client.put(
        f"/messageexchange/{mailbox}/inbox/{message_id}/status/acknowledged", headers=headers(mailbox, v2=v2)
    )


def track(client, headers, message_id: str) -> dict:
    response = client.get(
        "/messageexchange/ALICE/outbox/tracking", params={"messageID": message_id}, headers=headers("ALICE")
    )
    return response.json()


def test_ack_response(client, headers, send, v2):
    message_id = send()
    response = ack(client, headers, message_id, v2=v2)
    assert response.status_code == 200
    if v2:
        assert response.content == b""
    else:
        assert response.headers["content-type"] == JSON
        assert response.json() == {"messageId": message_id}


def test_ack_removes_the_message_from_the_inbox(client, headers, send, clock):
    message_id = send()
    ack(client, headers, message_id)
    assert client.get("/messageexchange/BOB/inbox", headers=headers("BOB")).json()["messages"] == []
    assert client.get("/messageexchange/BOB/count", headers=headers("BOB")).json() == {"count": 0}
    assert track(client, headers, message_id)["status"] == "acknowledged"


def test_ack_is_idempotent(client, headers, send, v2):
    message_id = send()
    assert ack(client, headers, message_id).status_code == 200
    again = ack(client, headers, message_id, v2=v2)
    assert again.status_code == 200
    assert again.content == b"" if v2 else again.json() == {"messageId": message_id}


def test_ack_of_an_uploading_message_changes_nothing(client, headers):
    sent = client.post(
        "/messageexchange/ALICE/outbox",
        content=b"a",
        headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF1", mex_chunk_range="1:2"),
    )
    message_id = sent.json()["message_id"]
    assert ack(client, headers, message_id).status_code == 200
    assert track(client, headers, message_id)["status"] == "uploading"
    client.post(
        f"/messageexchange/ALICE/outbox/{message_id}/2",
        content=b"b",
        headers=headers("ALICE", mex_chunk_range="2:2"),
    )
    assert client.get("/messageexchange/BOB/inbox", headers=headers("BOB")).json()["messages"] == [message_id]


def test_ack_path_id_is_case_insensitive(client, headers, send):
    message_id = send()
    response = ack(client, headers, message_id.lower(), v2=False)
    assert response.json() == {"messageId": message_id}
    assert track(client, headers, message_id)["status"] == "acknowledged"


def test_ack_of_an_unknown_message_is_404(client, headers, v2):
    unknown = "20260101000000000000_ABCDEF"
    assert_error(
        ack(client, headers, unknown, v2=v2), 404, v2, "RECEIVE", "20", "Message does not exist", unknown
    )


def test_ack_by_another_mailbox_is_403(client, headers, send, v2):
    message_id = send()
    assert_error(ack(client, headers, message_id, "BARRY", v2=v2), 403, v2, "", "", "Forbidden", message_id)
    assert_error(ack(client, headers, message_id, "ALICE", v2=v2), 403, v2, "", "", "Forbidden", message_id)
    assert track(client, headers, message_id)["status"] == "accepted"


def test_ack_needs_auth(client, send):
    message_id = send()
    assert client.put(f"/messageexchange/BOB/inbox/{message_id}/status/acknowledged").status_code == 403
