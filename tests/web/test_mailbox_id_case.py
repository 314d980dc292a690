"""Where a mailbox id is upper-cased and where it is not: the table in docs/operations.md
("Mailbox ids and case") and docs/mesh-compatibility.md, row by row."""

from __future__ import annotations

import uuid

import pytest
from tests.conftest import SHARED_KEY

from mailroom.auth.mesh_hmac import build_header

from ._mesh import V2_TYPE, assert_error

PASSWORD = "x26-password"


@pytest.fixture
def gp(container):
    """Mailbox ``x26abc1`` and a workflow naming it in lower case, imported (as ``mailbox import``
    and ``workflow import`` do)."""
    container.mailboxes.import_mailboxes(
        [{"mailbox_id": " x26abc1 ", "password": PASSWORD, "ods_code": "X26"}]
    )
    container.mailboxes.import_workflows(
        [{"workflow_id": "WF1", "senders": ["alice"], "receivers": ["x26abc1"]}]
    )


def token(mailbox: str, clock) -> str:
    return build_header(mailbox, PASSWORD, SHARED_KEY, nonce=str(uuid.uuid4()), at=clock.now())


def test_import_stores_the_id_trimmed_and_upper_cased(container, gp):
    assert container.mailboxes.get("X26ABC1").ods_code == "X26"
    assert [m.mailbox_id for m in container.mailboxes.workflow_receivers("WF1")] == ["X26ABC1"]


def test_the_path_id_is_upper_cased(client, clock, gp):
    response = client.get(
        "/messageexchange/x26abc1/inbox", headers={"authorization": token("X26ABC1", clock)}
    )
    assert response.status_code == 200


def test_the_token_id_is_not(client, clock, gp, v2):
    for path in ["x26abc1", "X26ABC1"]:
        headers = {"authorization": token("x26abc1", clock), **({"accept": V2_TYPE} if v2 else {})}
        response = client.get(f"/messageexchange/{path}/inbox", headers=headers)
        assert_error(response, 403, v2, "", "", "Mailbox id does not match token")


def test_mex_to_and_mex_from_are_upper_cased(client, clock, gp, headers):
    sent = client.post(
        "/messageexchange/ALICE/outbox",
        content=b"hello",
        headers=headers("ALICE", mex_to=" x26abc1 ", mex_from="alice", mex_workflowid="WF1"),
    )
    assert sent.status_code == 202, sent.text
    inbox = client.get("/messageexchange/X26ABC1/inbox", headers={"authorization": token("X26ABC1", clock)})
    assert inbox.json()["messages"] == [sent.json()["message_id"]]


def test_lookup_matches_exactly_and_answers_the_stored_id(client, gp):
    found = client.get("/messageexchange/endpointlookup/X26/WF1", headers={"accept": V2_TYPE})
    assert found.json()["results"] == [{"mailbox_id": "X26ABC1", "mailbox_name": ""}]
    assert client.get("/messageexchange/endpointlookup/x26/WF1", headers={"accept": V2_TYPE}).json() == {
        "results": []
    }


def test_sandbox_mailbox_details_are_not_upper_cased(client, gp):
    assert client.get("/messageexchange/mailbox/X26ABC1").status_code == 200
    assert client.get("/messageexchange/mailbox/x26abc1").status_code == 404
