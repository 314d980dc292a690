"""Endpoint lookup and workflow search, without authentication (spec §5.12)."""

from __future__ import annotations

import pytest

from ._mesh import JSON, V2_TYPE, assert_error


def lookup(client, ods_code: str, workflow_id: str, v2: bool, **extra: str):
    headers = {"accept": V2_TYPE} if v2 else {}
    return client.get(
        f"/messageexchange/endpointlookup/{ods_code}/{workflow_id}", headers={**headers, **extra}
    )


def test_lookup_v1(client):
    response = lookup(client, "X26", "ANOTHER_WORKFLOW", v2=False)
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    body = response.json()
    assert set(body) == {"query_id", "results"}
    assert isinstance(body["query_id"], str)
    assert body["results"] == [{"address": "ALICE", "description": "TESTMB1", "endpoint_type": "MESH"}]


def test_lookup_v2(client):
    response = lookup(client, "X27", "ANOTHER_WORKFLOW", v2=True)
    assert response.status_code == 200
    assert response.headers["content-type"] == V2_TYPE
    assert response.json() == {"results": [{"mailbox_id": "BARRY", "mailbox_name": "TESTMB3"}]}


NO_MATCH = [
    ("X27", "RESTRICTED_WORKFLOW"),  # BARRY is no receiver of it
    ("X26", "UNKNOWN_WORKFLOW"),
    ("x26", "ANOTHER_WORKFLOW"),  # exact match: the ODS code is not upper-cased
    ("X26", "another_workflow"),  # workflow ids are case-sensitive
]


def test_lookup_without_a_match_is_an_empty_list(client, v2):
    for ods_code, workflow_id in NO_MATCH:
        response = lookup(client, ods_code, workflow_id, v2)
        assert response.status_code == 200
        assert response.json()["results"] == [], (ods_code, workflow_id)


def test_lookup_only_returns_receivers(client):
    # ALICE sends RESTRICTED_WORKFLOW; only BOB receives it
    assert lookup(client, "X26", "RESTRICTED_WORKFLOW", v2=True).json() == {
        "results": [{"mailbox_id": "BOB", "mailbox_name": "TESTMB2"}]
    }


def test_lookup_with_blank_values_is_400(client, v2):
    for ods_code, workflow_id, msg in [
        ("%20", "ANOTHER_WORKFLOW", "ods code missing"),
        ("X26", "%20%20", "workflow id missing"),
    ]:
        assert_error(lookup(client, ods_code, workflow_id, v2), 400, v2, "", "", msg)


def test_lookup_accepts_an_authorization_header(client, auth):
    response = lookup(client, "X26", "ANOTHER_WORKFLOW", v2=True, authorization=auth("ALICE"))
    assert response.status_code == 200
    assert response.json()["results"] == [{"mailbox_id": "ALICE", "mailbox_name": "TESTMB1"}]


@pytest.mark.parametrize("accept", [None, V2_TYPE])
def test_workflow_search_is_always_v2(client, accept):
    response = client.get(
        "/messageexchange/workflowsearch/ANOTHER_WORKFLOW", headers={"accept": accept} if accept else {}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == V2_TYPE
    results = response.json()["results"]
    assert sorted(results, key=lambda item: item["mailbox_id"]) == [
        {"mailbox_id": "ALICE", "mailbox_name": "TESTMB1"},
        {"mailbox_id": "BARRY", "mailbox_name": "TESTMB3"},
    ]


def test_workflow_search_without_a_match(client):
    response = client.get("/messageexchange/workflowsearch/NOPE")
    assert response.json() == {"results": []}


def test_workflow_search_with_a_blank_id_is_400(client):
    response = client.get("/messageexchange/workflowsearch/%20")
    assert_error(response, 400, False, "", "", "workflow id missing")
