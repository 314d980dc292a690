"""web.messaging.hot answers the JSON faces' hot requests exactly as their FastAPI routes do.

Each request is sent twice to the same store: through the app (``MailroomApp``, which takes the
hot ones itself) and straight to the faces' own FastAPI app (``app.state.json_app``, which
never does); status, body and the headers a client reads must agree, errors included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mailroom.container import Container
from mailroom.settings import Settings
from mailroom.web.app import create_app
from mailroom.web.messaging import hot

from ._json_api import login


@pytest.fixture
def both(settings: Settings, container: Container) -> Iterator[tuple[TestClient, TestClient]]:
    app = create_app(settings, container)
    with TestClient(app) as through_app, TestClient(app.state.json_app) as through_fastapi:
        yield through_app, through_fastapi


def write(client: TestClient, token: str, recipients: list[str] | None = None) -> str:
    body = {"subject": "s", "body": "b", "recipients": [{"id": r} for r in recipients or ["BOB"]]}
    answer = client.post("/2/messages/write-message", json=body, headers={"authorization": token})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["result"])


def agree(both: tuple[TestClient, TestClient], method: str, path: str, **kwargs: Any) -> Any:
    """The request through both; they must answer alike. The app's answer's JSON."""
    through_app, through_fastapi = both
    hot_answer = through_app.request(method, path, **kwargs)
    plain_answer = through_fastapi.request(method, path, **kwargs)
    assert (hot_answer.status_code, hot_answer.json()) == (plain_answer.status_code, plain_answer.json())
    for header in ("content-type", "www-authenticate", "link"):
        assert hot_answer.headers.get(header) == plain_answer.headers.get(header)
    return hot_answer.json()


def scope(method: str, path: str, query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": query, "headers": []}


@pytest.mark.parametrize(
    ("method", "path", "query", "taken"),
    [
        ("POST", "/2/messages/write-message", b"", True),
        ("GET", "/message/inbox", b"pageLength=5&fetchAll=true", True),
        ("GET", "/message/inbox/20260301103000000000_ABCDEF", b"", True),
        ("GET", "/message/inbox/20260301103000000000_ABCDEF", b"markAsRead=false", True),
        ("GET", "/message/inbox/20260301103000000000_ABCDEF", b"markAsRead=no", False),
        ("GET", "/message/inbox/20260301103000000000_ABCDEF/attachments", b"", False),
        ("DELETE", "/message/inbox/20260301103000000000_ABCDEF", b"", True),
        ("POST", "/message/inbox/delete", b"", False),
        ("GET", "/message/outbox", b"", False),
        ("GET", "/2/messages/get-received-messages", b"", False),
    ],
)
def test_only_the_plain_hot_requests_are_taken(method: str, path: str, query: bytes, taken: bool) -> None:
    assert (hot.match(scope(method, path, query)) is not None) is taken


def test_writing_agrees_and_refusals_come_in_the_d4science_shape(both) -> None:
    token = login(both[0], "ALICE")
    path = "/2/messages/write-message"
    first = write(both[0], token)
    second = write(both[1], token)
    assert first != second
    skipped = {"subject": "s", "body": "b", "recipients": [{"id": "BOB"}, {"id": "NOBODY"}]}
    answer = both[0].post(path, json=skipped, headers={"authorization": token}).json()
    assert answer["success"] is True
    assert "NOBODY" in answer["message"]
    for body, headers in [
        ({"subject": "s", "body": "b", "recipients": [{"id": "NOBODY"}]}, {"authorization": token}),
        ({"subject": "s", "recipients": [{"id": "BOB"}]}, {"authorization": token}),
        ({"subject": "s", "body": "b", "recipients": [{"id": "BOB"}]}, {}),
        ({"subject": "s", "body": "b", "recipients": [{"id": "BOB"}]}, {"authorization": "Bearer forged"}),
    ]:
        refused = agree(both, "POST", path, json=body, headers=headers)
        assert refused["success"] is False
        assert refused["result"] is None
    bad_json = agree(both, "POST", path, content=b"{not json", headers={"authorization": token})
    assert bad_json["success"] is False


def test_the_inbox_list_read_and_delete_agree(both) -> None:
    alice, bob = login(both[0], "ALICE"), login(both[0], "BOB")
    ids = [write(both[0], alice) for _ in range(3)]
    listed = agree(both, "GET", "/message/inbox?fetchAll=true&sortDir=asc", headers={"authorization": bob})
    assert sorted(m["as2MessageId"] for m in listed["messages"]) == sorted(ids)
    agree(both, "GET", "/message/inbox?sortDir=sideways", headers={"authorization": bob})
    # reading with markAsRead=false changes nothing, so both can read the same message
    peek = agree(both, "GET", f"/message/inbox/<{ids[0]}>?markAsRead=false", headers={"authorization": bob})
    assert peek["apiFetched"] is False
    read = both[0].get(f"/message/inbox/{ids[0]}", headers={"authorization": bob}).json()
    assert read["apiFetched"] is True
    assert read["body"] == "b"
    unread = agree(both, "GET", "/message/inbox", headers={"authorization": bob})
    assert sorted(m["as2MessageId"] for m in unread["messages"]) == sorted(ids[1:])  # the read one hidden
    for path in (f"/message/inbox/{ids[1]}", "/message/inbox/NO_SUCH_MESSAGE"):
        for headers in ({"authorization": alice}, {}, {"authorization": bob + "x"}):
            refused = agree(both, "GET", path, headers=headers)
            assert set(refused) == {"message"}  # MFT Gateway's error shape
    assert both[0].delete(f"/message/inbox/{ids[1]}", headers={"authorization": bob}).json() == {
        "deleted": ids[1]
    }
    assert both[1].delete(f"/message/inbox/{ids[2]}", headers={"authorization": bob}).json() == {
        "deleted": ids[2]
    }
    gone = agree(both, "DELETE", f"/message/inbox/{ids[1]}", headers={"authorization": bob})
    assert gone == {"deleted": ids[1]}  # deleting again is idempotent for the owner
    refused = agree(both, "DELETE", f"/message/inbox/{ids[0]}", headers={"authorization": alice})
    assert set(refused) == {"message"}


def test_without_the_json_api_nothing_is_taken(settings: Settings, container: Container) -> None:
    with TestClient(create_app(settings.replace(json_api=False), container)) as client:
        answer = client.post(
            "/2/messages/write-message", json={"subject": "s"}, headers={"authorization": "x"}
        )
        assert answer.status_code == 404
