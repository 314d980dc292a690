"""Schema-based fuzzing of the JSON messaging API: schemathesis drives every route of both faces.

The document (``/openapi.json``) describes each JSON route's path values, query values, headers,
bodies and the ``Authorization`` security scheme (``web.messaging.auth``); schemathesis generates
requests from it, in both modes (values the schema allows and values it forbids), and calls the
app in-process (ASGI). Real messages are made before each operation, some with attachments, and
most requests are aimed: a valid access token (bare or ``Bearer``) for a real mailbox, a real
message id (with or without angle brackets), a real signed file link, real ids and credentials in
bodies. The rest keep whatever was made up. Checks: no 5xx, and every 4xx answers in its face's
own error shape (MFT Gateway's ``{"message": str, ...}``; D4Science's ``{"success": false,
"message": str, "result": null}``). ``test_json_api_hostile.py`` adds hand-made hostile values
and the no-state-change check.
"""

from __future__ import annotations

import zlib
from typing import Any

import anyio
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from ._json_api import PASSWORD

MAILBOXES = ("ALICE", "BOB")
#: Per operation, over both generation modes: 25 operations keep the test near 20 s a stack.
EXAMPLES = 20
#: The JSON API's paths (the MESH face has its own fuzz test).
JSON_PREFIXES = ("/authorize", "/refresh-session", "/message/", "/files/", "/2/")


class Seeds:
    """Tokens for each mailbox and the real ids, links and credentials requests are aimed at."""

    def __init__(self, client: Any, container: Any) -> None:
        self.client = client
        self.container = container
        self.tokens = {m: self._login(m)["apiToken"] for m in MAILBOXES}
        self.refresh: list[tuple[str, str]] = []  # (username, refresh token) of spare logins
        self.message_ids: list[str] = []
        self.file_tokens: list[str] = []
        self.attachment_ids: list[str] = []

    def _login(self, mailbox: str) -> dict[str, Any]:
        response = self.client.post("/authorize", json={"username": mailbox, "password": PASSWORD})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def auth(self, mailbox: str, bearer: bool) -> str:
        token = self.tokens[mailbox]
        return f"Bearer {token}" if bearer else token

    def _post(self, path: str, mailbox: str, **kwargs: Any) -> Any:
        headers = {"authorization": self.auth(mailbox, True), **kwargs.pop("headers", {})}
        response = self.client.post(path, headers=headers, **kwargs)
        assert response.status_code in (200, 202), (path, response.status_code, response.text)
        return response.json()

    def seed(self) -> None:
        """Made again before each operation: earlier ones may have deleted or read the last."""
        raw = self._post(
            "/message/submit",
            "ALICE",
            content=b"fuzz seed attachment",
            headers={"as2-to": "BOB", "subject": "seed", "attachment-name": "seed.txt"},
        )["as2MessageId"]
        form = self._post(
            "/message/submit",
            "ALICE",
            files=[("file", ("a.csv", b"a,b\n1,2\n", "text/csv")), ("file", ("b.bin", b"\x00" * 64, None))],
            headers={"as2-to": "BOB,ALICE"},
        )["as2MessageId"]
        staged = self._post("/2/attachments", "BOB", params={"name": "d4s.txt"}, content=b"d4s")["result"]
        written = self._post(
            "/2/messages/write-message",
            "BOB",
            json={
                "subject": "hi",
                "body": "hello",
                "recipients": [{"id": "ALICE"}],
                "attachmentIds": [staged],
            },
        )["result"]
        spare = self._post("/2/attachments", "ALICE", content=b"spare")["result"]
        self.attachment_ids = [spare, staged]
        self.message_ids = [raw, form, written, f"<{raw}>", f"<{written}>"]
        bob = self.container.api_tokens.verify(self.tokens["BOB"])
        links = anyio.run(self._links, bob, raw)
        receipt = self.client.get(f"/message/inbox/{raw}/mdn", headers={"authorization": self.tokens["BOB"]})
        assert receipt.status_code == 200, receipt.text
        self.file_tokens = [k.token for k in links] + [receipt.json()["url"].rsplit("/", 1)[-1]]
        # a spare chain for /refresh-session (from the service: the fuzzer's wrong passwords
        # may have the client's address refused with 429 by now)
        fresh = self.container.api_tokens.authorize_password("ALICE", PASSWORD).refresh_token
        self.refresh = [("ALICE", fresh), ("alice", fresh), ("BOB", fresh)]

    async def _links(self, principal: Any, message_id: str) -> list[Any]:
        return list(await self.container.messaging.attachment_links(principal, message_id, incoming=True))


def _pick(value: object, options: list[str] | tuple[str, ...]) -> str:
    """A stable choice driven by the generated value (so Hypothesis can shrink it)."""
    return options[zlib.crc32(repr(value).encode()) % len(options)]


def _roll(value: object, out_of: int) -> int:
    return zlib.crc32(repr(value).encode() + b"roll") % out_of


def _aim_body(case: Any, seeds: Seeds, mailbox: str) -> None:
    body = case.body
    if not isinstance(body, dict) or _roll(body, 3) == 0:
        return
    path = case.operation.path
    if path == "/authorize":
        body.pop("tokenID", None)
        body.pop("tokenSecret", None)
        if _roll(body, 2):
            body.update(username=_pick(body, [mailbox, mailbox.lower()]), password=PASSWORD)
        else:
            body.update(username=mailbox, password="wrong")
    elif path == "/refresh-session":
        body["username"], body["refreshToken"] = seeds.refresh[_roll(body, len(seeds.refresh))]
    elif path.endswith("/delete"):
        key = _pick(body, ["as2MessageIds", "messageIdentifiers"])
        body[key] = [_pick(body, seeds.message_ids), "nope"]
    elif path == "/2/messages/write-message":
        body["recipients"] = [{"id": _pick(body, ["ALICE", "BOB", "BARRY", "NOBODY"])}]
        body["attachmentIds"] = [[], [seeds.attachment_ids[0]], [seeds.attachment_ids[1]]][_roll(body, 3)]
    elif path == "/2/messages/set-message-read":
        body["messageId"] = _pick(body, seeds.message_ids)


def aim(case: Any, seeds: Seeds) -> None:
    """Three requests in four get a valid token; half the ids and links are real ones."""
    mailbox = _pick(case.headers, MAILBOXES)
    secured = bool(case.operation.definition.raw.get("security"))
    if secured and _roll(case.headers, 4):
        case.headers = {
            **(case.headers or {}),
            "Authorization": seeds.auth(mailbox, bool(_roll(case.query, 2))),
        }
    path = case.path_parameters or {}
    if "message" in path and _roll(path["message"], 2):
        path["message"] = _pick(path["message"], seeds.message_ids)
    if "token" in path and _roll(path["token"], 3):
        path["token"] = _pick(path["token"], seeds.file_tokens)
    query = case.query
    if isinstance(query, dict) and "recipient" in query and _roll(query, 2):  # an outbox receipt's
        query["recipient"] = _pick(query, ["BOB", "bob", "ALICE", "NOBODY"])
    if case.operation.path == "/message/submit" and _roll(case.headers, 4):
        case.headers = {k: v for k, v in case.headers.items() if k.lower() not in ("as2-from", "as2-to")}
        case.headers["AS2-To"] = _pick(case.headers, ["ALICE", "BOB", "bob,<ALICE>", "NOBODY"])
        if _roll(case.body, 2):
            case.headers["AS2-From"] = _pick(case.body, [mailbox, f"<{mailbox.lower()}>"])
    _aim_body(case, seeds, mailbox)


def check_shape(path: str, status: int, response: Any) -> None:
    """A 4xx answers in the face's own shape, whatever was sent."""
    assert status < 500, (path, status, response.text[:500])
    if status < 400:
        return
    body = response.json()
    assert isinstance(body, dict), (path, status, body)
    if path.startswith("/2/"):
        assert body.get("success") is False, (path, status, body)
        assert body.get("result") is None, (path, status, body)
    assert isinstance(body.get("message"), str), (path, status, body)


def fuzz(operation: Any, seeds: Seeds) -> None:
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        aim(case, seeds)
        response = case.call()
        check_shape(operation.path, response.status_code, response)

    check()


def test_json_api_no_server_errors_and_errors_in_each_face_shape(client, container):
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if op.path.startswith(JSON_PREFIXES)
    ]
    assert len(operations) == 25  # every JSON route is in the document
    seeds = Seeds(client, container)
    for operation in operations:
        seeds.seed()
        fuzz(operation, seeds)
