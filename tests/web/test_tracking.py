"""Tracking: ``GET /messageexchange/{mailbox}/outbox/tracking`` and ``.../tracking/{local_id}``
(spec §5.10, §5.11)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ._mesh import JSON, V2_TYPE, assert_error, assert_validation, gz

TRACKING = "/messageexchange/ALICE/outbox/tracking"
PAYLOAD = gz(b"x" * 100)


def mesh_time(value) -> str:
    return value.strftime("%Y%m%d%H%M%S")


def iso(value) -> str:
    return value.replace(tzinfo=None).isoformat()


def track(client, headers, message_id: str, v2: bool = True, mailbox: str = "ALICE"):
    return client.get(
        f"/messageexchange/{mailbox}/outbox/tracking",
        params={"messageID": message_id},
        headers=headers(mailbox, v2=v2),
    )


def test_v2_tracking_body(client, headers, send, clock):
    message_id = send(mex_localid="L1")
    now = clock.now()
    response = track(client, headers, message_id)
    assert response.status_code == 200
    assert response.headers["content-type"] == V2_TYPE
    assert response.json() == {
        "message_id": message_id,
        "local_id": "L1",
        "workflow_id": "WF1",
        "filename": f"{message_id}.dat",
        "expiry_time": iso(now + timedelta(days=5)),
        "upload_timestamp": iso(now),
        "recipient": "BOB",
        "recipient_name": "TESTMB2",
        "recipient_ods_code": "X26",
        "recipient_org_code": "X26",
        "status_success": True,
        "status": "accepted",
    }


def v1_body(message_id: str, now, **overrides):
    body = {
        "addressType": "ALL",
        "checksum": "sha256:abc",
        "chunkCount": 1,
        "compressFlag": "Y",
        "contentEncoding": "gzip",
        "downloadTimestamp": "",
        "dtsId": message_id,
        "encryptedFlag": "Y",
        "expiryTime": mesh_time(now + timedelta(days=5)),
        "failureDate": "",
        "failureDiagnostic": "",
        "fileName": "f.dat",
        "fileSize": len(PAYLOAD),
        "isCompressed": "Y",
        "linkedMsgId": None,
        "localId": "L1",
        "meshRecipientOdsCode": "X26",
        "messageId": message_id,
        "messageType": "Data",
        "partnerId": "P1",
        "recipient": "BOB",
        "recipientName": "TESTMB2",
        "recipientOrgCode": "X26",
        "recipientOrgName": "",
        "recipientBillingEntity": "Wales",
        "recipientSmtp": "",
        "sender": "ALICE",
        "senderName": "TESTMB1",
        "senderOdsCode": "X26",
        "senderOrgCode": "X26",
        "senderOrgName": "",
        "senderBillingEntity": "England",
        "senderSmtp": "",
        "status": "Accepted",
        "statusCode": "00",
        "statusDescription": "Transferred to recipient mailbox",
        "statusEvent": "TRANSFER",
        "statusSuccess": "SUCCESS",
        "statusTimestamp": mesh_time(now),
        "subject": "S",
        "uploadTimestamp": mesh_time(now),
        "version": "1.0",
        "workflowId": "WF1",
    }
    body.update(overrides)
    return body


@pytest.fixture
def full_message(send):
    def make() -> str:
        return send(
            body=PAYLOAD,
            content_encoding="gzip",
            mex_localid="L1",
            mex_partnerid="P1",
            mex_subject="S",
            mex_filename="f.dat",
            mex_content_checksum="sha256:abc",
            mex_content_encrypted="Y",
            mex_content_compressed="Y",
        )

    return make


def test_v1_tracking_body(client, headers, full_message, clock):
    message_id = full_message()
    response = track(client, headers, message_id, v2=False)
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    assert response.json() == v1_body(message_id, clock.now())


def test_tracking_follows_the_status(client, headers, full_message, clock):
    sent_at = clock.now()
    message_id = full_message()
    clock.advance(timedelta(minutes=3))
    client.put(f"/messageexchange/BOB/inbox/{message_id}/status/acknowledged", headers=headers("BOB"))
    acked_at = mesh_time(clock.now())
    assert track(client, headers, message_id, v2=False).json() == v1_body(
        message_id, sent_at, status="Acknowledged", downloadTimestamp=acked_at, statusTimestamp=acked_at
    )
    assert track(client, headers, message_id).json()["status"] == "acknowledged"


def test_tracking_an_uploading_message(client, headers, send):
    message_id = send(mex_chunk_range="1:2")
    assert track(client, headers, message_id).json()["status"] == "uploading"
    assert track(client, headers, message_id, v2=False).json()["status"] == "Uploading"


def test_tracking_message_id_is_case_insensitive(client, headers, send):
    message_id = send()
    assert track(client, headers, message_id.lower()).json()["message_id"] == message_id


@pytest.mark.parametrize("mailbox", ["BOB", "BARRY"])
def test_only_the_sender_may_track(client, headers, send, v2, mailbox):
    message_id = send()
    response = track(client, headers, message_id, v2=v2, mailbox=mailbox)
    assert_error(response, 404, v2, "RECEIVE", "20", "Message does not exist", message_id)


def test_tracking_an_unknown_message_is_404(client, headers, v2):
    unknown = "20260101000000000000_ABCDEF"
    assert_error(
        track(client, headers, unknown, v2=v2), 404, v2, "RECEIVE", "20", "Message does not exist", unknown
    )


def test_tracking_without_message_id_is_a_validation_error(client, headers):
    response = client.get(TRACKING, headers=headers("ALICE"))
    assert_validation(response, {"type": "missing", "loc": ["query", "messageID"], "msg": "Field required"})


def test_tracking_needs_auth(client, send):
    assert client.get(TRACKING, params={"messageID": send()}).status_code == 403


# -- by local id (deprecated) -------------------------------------------------------------------------


def test_local_id_tracking_is_always_v1(client, headers, full_message, clock, v2):
    message_id = full_message()
    response = client.get(f"{TRACKING}/L1", headers=headers("ALICE", v2=v2))
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    assert response.json() == v1_body(message_id, clock.now())


def test_unknown_local_id_is_404(client, headers, send, v2):
    send(mex_localid="L1")
    response = client.get(f"{TRACKING}/OTHER", headers=headers("ALICE", v2=v2))
    assert_error(response, 404, v2, "TRACK", "20", "Message does not exist")


def test_another_senders_local_id_is_404(client, headers, send):
    send(mex_localid="L1")
    assert client.get("/messageexchange/BOB/outbox/tracking/L1", headers=headers("BOB")).status_code == 404


def test_ambiguous_local_id_is_300(client, headers, send, v2):
    send(mex_localid="twice")
    send(mex_localid="twice", recipient="BARRY")
    response = client.get(f"{TRACKING}/twice", headers=headers("ALICE", v2=v2))
    assert_error(response, 300, v2, "", "", "Multiple messages found for this local id")


def test_local_id_with_special_characters(client, headers, send):
    message_id = send(mex_localid="test#TEST")
    response = client.get(f"{TRACKING}/test%23TEST", headers=headers("ALICE"))
    assert response.json()["messageId"] == message_id
