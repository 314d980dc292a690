"""Client-filled text that a column cannot hold is refused with a 400, the same on both stacks.

PostgreSQL raises a DataError on a value longer than its ``VARCHAR(n)`` or containing NUL,
which used to surface as a 500; SQLite stores either silently. Now both refuse them up front.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailroom.storage.tables import messages

from ._mesh import assert_validation

OUTBOX = "/messageexchange/ALICE/outbox"


def message_count(container) -> int:
    with container.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())


def test_over_long_plain_content_type_is_a_validation_error(client, headers, container):
    response = client.post(
        OUTBOX,
        content=b"hello",
        headers={**headers("ALICE", mex_to="BOB", mex_workflowid="WF1"), "content-type": "t/" + "x" * 99},
    )
    assert_validation(
        response,
        {
            "type": "string_too_long",
            "loc": ["header", "content-type"],
            "msg": "String should have at most 100 characters",
            "input": "t/" + "x" * 98,
        },
    )
    assert message_count(container) == 0


def test_plain_content_type_at_the_limit_is_stored(client, headers):
    content_type = "t/" + "x" * 98
    sent = client.post(
        OUTBOX,
        content=b"hello",
        headers={**headers("ALICE", mex_to="BOB", mex_workflowid="WF1"), "content-type": content_type},
    )
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["message_id"]
    got = client.get(f"/messageexchange/BOB/inbox/{message_id}", headers=headers("BOB"))
    assert got.status_code == 200
    assert got.headers["mex-content-type"] == content_type


def test_sandbox_report_with_over_long_fields_is_a_400_and_stores_nothing(client, container):
    for field, value in (("code", "9" * 51), ("subject", "s" * 501), ("workflow_id", "W" * 301)):
        body = {"mailbox_id": "ALICE", "code": "02", "description": "d", "workflow_id": "WF", field: value}
        response = client.post("/messageexchange/admin/report", json=body)
        assert response.status_code == 400, (field, response.text)
    assert message_count(container) == 0


NUL_LOOKUPS = (
    ("/messageexchange/ALICE/outbox/tracking/a%00b", {}),
    ("/messageexchange/ALICE/outbox/tracking", {"messageID": "a\x00b"}),
    ("/messageexchange/ALICE/inbox", {"workflow_filter": "W\x00F"}),
    ("/messageexchange/ALICE/inbox", {"continue_from": "a\x00b"}),
    ("/messageexchange/endpointlookup/X%0026/WF", {}),
    ("/messageexchange/workflowsearch/W%00F", {}),
    ("/messageexchange/ALICE/inbox/a%00b", {}),
    ("/messageexchange/ALI%00CE/inbox", {}),
    # a forged paging token whose message id holds a NUL
    (
        "/messageexchange/ALICE/inbox",
        {"continue_from": "eyJ0IjoiMjAyNi0wMS0wMVQwMDowMDowMCswMDowMCIsIm0iOiJhXHUwMDAwIn0"},
    ),
    (
        "/messageexchange/ALICE/inbox/rich",
        {"continue_from": "eyJ0IjoiMjAyNi0wMS0wMVQwMDowMDowMCswMDowMCIsIm0iOiJhXHUwMDAwIn0"},
    ),
)


@pytest.mark.parametrize(("path", "params"), NUL_LOOKUPS)
def test_nul_characters_in_lookups_are_never_a_500(client, headers, path, params):
    """PostgreSQL refuses NUL even in a query parameter; each lookup must still answer cleanly."""
    response = client.get(path, params=params, headers=headers("ALICE"))
    assert response.status_code < 500, (path, params, response.text)
