"""Inbox list and count: ``GET /messageexchange/{mailbox}/inbox`` and ``/count`` (spec §5.5, §5.7)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from ._mesh import JSON, V2_TYPE, assert_validation

INBOX = "/messageexchange/BOB/inbox"


def get_inbox(client, headers, v2: bool = True, **params):
    return client.get(INBOX, params=params, headers=headers("BOB", v2=v2))


def test_empty_inbox(client, headers, v2):
    response = get_inbox(client, headers, v2)
    assert response.status_code == 200
    if v2:
        assert response.headers["content-type"] == V2_TYPE
        assert response.json() == {"messages": [], "links": {"self": INBOX}, "approx_inbox_count": 0}
    else:
        assert response.headers["content-type"] == JSON
        assert response.json() == {"messages": []}


def test_messages_are_listed_oldest_first(client, headers, send_many, v2):
    ids = send_many(3)
    body = get_inbox(client, headers, v2).json()
    assert body["messages"] == ids
    if v2:
        assert body == {"messages": ids, "links": {"self": INBOX}, "approx_inbox_count": 3}


def test_only_accepted_messages_of_this_mailbox_are_listed(client, headers, send, send_many):
    kept, acked = send_many(2)
    send(recipient="BARRY")
    send(mex_chunk_range="1:2")  # still uploading
    assert client.put(f"{INBOX}/{acked}/status/acknowledged", headers=headers("BOB")).status_code == 200
    report = client.post(
        "/messageexchange/admin/report",
        json={"mailbox_id": "BOB", "code": "14", "description": "not collected", "workflow_id": "WF1"},
    ).json()["message_id"]
    body = get_inbox(client, headers).json()
    assert body["messages"] == [kept, report]
    assert body["approx_inbox_count"] == 2


MAX_RESULTS_ERRORS = [
    ("9", {"type": "greater_than_equal", "msg": "Input should be greater than or equal to 10"}),
    ("0", {"type": "greater_than_equal", "msg": "Input should be greater than or equal to 10"}),
    ("5001", {"type": "less_than_equal", "msg": "Input should be less than or equal to 5000"}),
    ("ten", {"type": "int_parsing", "msg": "Input should be a valid integer"}),
]


def test_max_results_out_of_range_is_a_validation_error(client, headers, v2):
    for value, item in MAX_RESULTS_ERRORS:
        response = get_inbox(client, headers, v2, max_results=value)
        assert_validation(response, {**item, "loc": ["query", "max_results"], "input": value})


def test_max_results_bounds_are_inclusive(client, headers):
    for value in ["10", "5000", "500"]:
        assert get_inbox(client, headers, max_results=value).status_code == 200, value


def test_v2_pages_follow_links_next(client, headers, send_many):
    ids = send_many(12)
    first = get_inbox(client, headers, max_results="10").json()
    assert first["messages"] == ids[:10]
    assert first["approx_inbox_count"] == 12
    assert first["links"]["self"] == f"{INBOX}?max_results=10"
    next_link = first["links"]["next"]
    assert next_link.startswith(f"{INBOX}?max_results=10&continue_from=")
    assert parse_qs(urlsplit(next_link).query)["max_results"] == ["10"]

    second = client.get(next_link, headers=headers("BOB"))
    assert second.status_code == 200
    body = second.json()
    assert body["messages"] == ids[10:]
    assert "next" not in body["links"]
    assert body["approx_inbox_count"] == 12


def test_v2_full_last_page_has_no_next_link(client, headers, send_many):
    send_many(10)
    assert "next" not in get_inbox(client, headers, max_results="10").json()["links"]


def test_v2_paging_survives_acknowledging_the_page(client, headers, send_many):
    ids = send_many(11)
    first = get_inbox(client, headers, max_results="10").json()
    for message_id in first["messages"]:
        client.put(f"{INBOX}/{message_id}/status/acknowledged", headers=headers("BOB"))
    assert client.get(first["links"]["next"], headers=headers("BOB")).json()["messages"] == ids[10:]


def test_v2_foreign_continue_from_is_a_validation_error(client, headers):
    response = get_inbox(client, headers, continue_from="not-a-token-this-server-made-at-all")
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["query", "continue_from"]


def test_v1_continue_from_is_the_last_message_id(client, headers, send_many):
    ids = send_many(12)
    first = get_inbox(client, headers, v2=False, max_results="10").json()
    assert first == {"messages": ids[:10]}
    second = get_inbox(client, headers, v2=False, max_results="10", continue_from=ids[9]).json()
    assert second == {"messages": ids[10:]}
    assert get_inbox(client, headers, v2=False, continue_from=ids[11].lower()).json() == {"messages": []}


def test_continue_from_length_is_validated(client, headers, v2):
    cases = [
        ("A" * 23, {"type": "string_too_short", "msg": "String should have at least 24 characters"}),
        ("A" * 1001, {"type": "string_too_long", "msg": "String should have at most 1000 characters"}),
    ]
    for value, item in cases:
        response = get_inbox(client, headers, v2, continue_from=value)
        assert response.status_code == 400
        detail = response.json()["detail"][0]
        assert {key: detail[key] for key in ("type", "loc", "msg")} == {
            **item,
            "loc": ["query", "continue_from"],
        }


# -- workflow_filter ------------------------------------------------------------------------------

WORKFLOWS = ["ALPHA", "ALPHA_BETA", "BETA_ALPHA", "GAMMA"]


FILTER_CASES = [
    ("ALPHA", ["ALPHA"]),
    ("!ALPHA", ["ALPHA_BETA", "BETA_ALPHA", "GAMMA"]),
    ("ALPHA*", ["ALPHA", "ALPHA_BETA"]),
    ("!ALPHA*", ["BETA_ALPHA", "GAMMA"]),
    ("*ALPHA*", ["ALPHA", "ALPHA_BETA", "BETA_ALPHA"]),
    ("!*ALPHA*", ["GAMMA"]),
    ("  GAMMA  ", ["GAMMA"]),
    ("alpha", []),
]


def test_workflow_filter_grammar(client, headers, send, clock, v2):
    by_id = {}
    for workflow_id in WORKFLOWS:
        by_id[send(mex_workflowid=workflow_id)] = workflow_id
        clock.advance(timedelta(seconds=1))
    for workflow_filter, expected in FILTER_CASES:
        body = get_inbox(client, headers, v2, workflow_filter=workflow_filter).json()
        assert [by_id[message_id] for message_id in body["messages"]] == expected, workflow_filter
        if v2:
            assert body["approx_inbox_count"] == 4


def test_workflow_filter_appears_in_links(client, headers, send_many):
    send_many(11, mex_workflowid="ALPHA")
    body = get_inbox(client, headers, max_results="10", workflow_filter="!*BE TA*").json()
    assert body["links"]["self"] == f"{INBOX}?max_results=10&workflow_filter=%21%2ABE+TA%2A"
    assert body["links"]["next"].startswith(
        f"{INBOX}?max_results=10&workflow_filter=%21%2ABE+TA%2A&continue_from="
    )
    assert len(client.get(body["links"]["next"], headers=headers("BOB")).json()["messages"]) == 1


def test_filtered_pages_skip_non_matching_messages(client, headers, send_many):
    wanted = []
    for _ in range(11):
        wanted += send_many(1, mex_workflowid="KEEP")
        send_many(1, mex_workflowid="DROP")
    first = get_inbox(client, headers, max_results="10", workflow_filter="KEEP").json()
    second = client.get(first["links"]["next"], headers=headers("BOB")).json()
    assert first["messages"] + second["messages"] == wanted


def test_workflow_filter_length_is_validated(client, headers):
    cases = [
        ("A", {"type": "string_too_short", "msg": "String should have at least 2 characters", "input": "A"}),
        (
            "A" * 256,
            {
                "type": "string_too_long",
                "msg": "String should have at most 255 characters",
                "input": "A" * 255,
            },
        ),
    ]
    for value, item in cases:
        response = get_inbox(client, headers, workflow_filter=value)
        assert_validation(response, {**item, "loc": ["query", "workflow_filter"]})


# -- count ----------------------------------------------------------------------------------------


def test_count(client, headers, send_many, v2):
    send_many(2)
    response = client.get("/messageexchange/BOB/count", headers=headers("BOB", v2=v2))
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    body = response.json()
    if v2:
        assert body == {"count": 2}
    else:
        assert set(body) == {"count", "internalID", "allResultsIncluded"}
        assert (body["count"], body["allResultsIncluded"]) == (2, True)
        assert isinstance(body["internalID"], str)


def test_count_excludes_acknowledged_messages(client, headers, send_many):
    first, _second = send_many(2)
    client.put(f"{INBOX}/{first}/status/acknowledged", headers=headers("BOB"))
    assert client.get("/messageexchange/BOB/count", headers=headers("BOB")).json() == {"count": 1}


def test_inbox_needs_auth(client):
    assert client.get(INBOX).status_code == 403
    assert client.get("/messageexchange/BOB/count").status_code == 403
