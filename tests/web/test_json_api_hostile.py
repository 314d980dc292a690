"""Hand-made hostile input on every route of the JSON messaging API, on both stacks.

Each refusal is checked three ways: the status, the face's own error shape (MFT Gateway's
``{"message": str}``; D4Science's ``{"success": false, "message": str, "result": null}``), and
the store exactly as it was (the rows of every message table and the payload files, compared
before and after). Client file names are metadata only: no file appears anywhere but in the
payload store, whatever a name says. Ids of another mailbox's messages answer exactly what an
id that does not exist answers (404, never 403). ``test_json_api_fuzz.py`` fuzzes the same
routes from the OpenAPI document.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from mailroom.clock import FixedClock
from mailroom.container import Container
from mailroom.settings import Settings
from mailroom.storage import tables
from mailroom.web.app import create_app

from ._json_api import PASSWORD

MFT, D4S = "mft", "d4s"
#: Tables whose rows a refused request must leave exactly as they were.
STORE_TABLES = (
    tables.messages,
    tables.message_events,
    tables.envelopes,
    tables.attachments,
    tables.envelope_attachments,
    tables.deliveries,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Revocations seen at once (no per-process memory) and no login lockout to trip over."""
    return settings.replace(api_revocation_ttl=timedelta(0), api_lockout_failures=0)


@pytest.fixture
def api(settings: Settings, container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(settings, container)) as test_client:
        yield test_client


def login(api: TestClient, **body: str) -> dict[str, Any]:
    response = api.post("/authorize", json=body)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


class World:
    """Two mailboxes, a message each way (with attachments), and tokens of every kind."""

    def __init__(self, api: TestClient, container: Container, settings: Settings) -> None:
        self.api = api
        self.container = container
        self.settings = settings
        self.alice = login(api, username="ALICE", password=PASSWORD)["apiToken"]
        self.bob = login(api, username="BOB", password=PASSWORD)["apiToken"]
        key = container.api_tokens.create_key("BOB", read_only=True)
        self.bob_read_only = login(api, tokenID=key.info.key_id, tokenSecret=key.secret)["apiToken"]
        sent = api.post(
            "/message/submit",
            content=b"to bob",
            headers={"authorization": self.alice, "as2-to": "BOB", "attachment-name": "r.txt"},
        )
        assert sent.status_code == 202, sent.text
        self.to_bob = sent.json()["as2MessageId"]  # in BOB's inbox, ALICE's outbox
        staged = self.d4s("post", "/2/attachments", self.bob, params={"name": "b.txt"}, content=b"x")
        written = self.d4s(
            "post",
            "/2/messages/write-message",
            self.bob,
            json={"subject": "s", "body": "b", "recipients": [{"id": "ALICE"}], "attachmentIds": [staged]},
        )
        self.to_alice = written  # in ALICE's inbox, BOB's outbox
        links = api.get(f"/message/inbox/{self.to_bob}/attachments", headers={"authorization": self.bob})
        assert links.status_code == 200, links.text
        self.link = links.json()["attachments"][0]["url"]
        mdn = api.get(f"/message/inbox/{self.to_bob}/mdn", headers={"authorization": self.bob})
        self.receipt_token = mdn.json()["url"].rsplit("/", 1)[-1]

    def d4s(self, method: str, path: str, token: str, **kwargs: Any) -> Any:
        response = self.api.request(method, path, headers={"authorization": f"Bearer {token}"}, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()["result"]

    def snapshot(self) -> tuple[Any, ...]:
        with self.container.db.read() as conn:
            rows = tuple(
                tuple(sorted(repr(tuple(row)) for row in conn.execute(select(table)).all()))
                for table in STORE_TABLES
            )
        return rows, self.payload_files()

    def payload_files(self) -> tuple[tuple[str, int], ...]:
        store = self.settings.data_dir / "payloads"
        return tuple(sorted((str(p), p.stat().st_size) for p in store.rglob("*") if p.is_file()))


@pytest.fixture
def world(api: TestClient, container: Container, settings: Settings) -> World:
    return World(api, container, settings)


def shaped(response: Any, face: str) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("message"), str), body
    if face == D4S:
        assert body["success"] is False, body
        assert body["result"] is None, body
    return body


def refused(world: World, status: int, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """Send one request that must be refused with ``status``, in its face's shape, changing nothing."""
    before = world.snapshot()
    response = world.api.request(method, path, **kwargs)
    assert response.status_code == status, (method, path, response.status_code, response.text[:300])
    body = shaped(response, D4S if path.startswith("/2/") else MFT)
    assert_unchanged(world, before, (method, path))
    return body


def assert_unchanged(world: World, before: tuple[Any, ...], what: object) -> None:
    """The store is as ``before``; else which tables (or the payload files) changed."""
    after = world.snapshot()
    names = [t.name for t in STORE_TABLES]
    changed = [n for n, b, a in zip(names, before[0], after[0], strict=True) if a != b]
    if before[1] != after[1]:
        changed.append("payload files")
    assert not changed, (what, "changed", changed)


def bare(token: str) -> dict[str, str]:
    return {"authorization": token}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


JSON_ROUTES = [
    "/authorize",
    "/refresh-session",
    "/message/inbox/delete",
    "/message/outbox/delete",
    "/2/messages/write-message",
]


# -- malformed bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b"[]", b"null", b"\x00\xff\xfe", b'{"a": 1}{', b'"string"', b"1e999999"],
    ids=["open", "text", "array", "null", "binary", "trailing", "string", "huge-number"],
)
def test_malformed_json_is_400_and_changes_nothing(world: World, raw: bytes) -> None:
    for path in JSON_ROUTES:
        body = refused(
            world,
            400,
            "POST",
            path,
            content=raw,
            headers={**bare(world.bob), "content-type": "application/json"},
        )
        if not path.startswith("/2/"):
            assert body["errors"], body


def test_empty_bodies_are_400(world: World) -> None:
    for path in JSON_ROUTES:
        refused(world, 400, "POST", path, content=b"", headers=bearer(world.bob))
    refused(world, 400, "POST", "/2/messages/set-message-read", content=b"", headers=bearer(world.bob))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/authorize", {"username": 1, "password": ["x"]}),
        ("/authorize", {"username": None, "password": {"a": 1}}),
        ("/authorize", {}),
        ("/authorize", {"username": "BOB"}),
        ("/authorize", {"tokenID": "mrk_x"}),
        ("/authorize", {"tokenSecret": "s"}),
        ("/refresh-session", {"username": "BOB"}),
        ("/refresh-session", {"refreshToken": "x"}),
        ("/refresh-session", {"username": 5, "refreshToken": True}),
        ("/message/inbox/delete", {}),
        ("/message/inbox/delete", {"as2MessageIds": "x"}),
        ("/message/inbox/delete", {"messageIdentifiers": [1, 2]}),
        ("/message/outbox/delete", {"as2MessageIds": {"a": "b"}}),
        ("/message/outbox/delete", {"messageIdentifiers": ["x"] * 1001}),
        ("/2/messages/write-message", {"subject": "s"}),
        ("/2/messages/write-message", {"subject": "s", "body": "b", "recipients": "BOB"}),
        ("/2/messages/write-message", {"subject": "s", "body": "b", "recipients": [{"id": 5}]}),
        ("/2/messages/write-message", {"subject": "s", "body": "b", "recipients": []}),
        ("/2/messages/write-message", {"subject": "", "body": "b", "recipients": [{"id": "ALICE"}]}),
        ("/2/messages/write-message", {"subject": 1, "body": 2, "recipients": [{"id": "ALICE"}]}),
        (
            "/2/messages/write-message",
            {"subject": "s", "body": "b", "recipients": [{"id": "ALICE"}], "attachmentIds": "x"},
        ),
    ],
)
def test_wrong_types_and_missing_fields_are_400(world: World, path: str, body: dict[str, Any]) -> None:
    refused(world, 400, "POST", path, json=body, headers=bare(world.bob))


def test_set_message_read_refuses_bad_forms(world: World) -> None:
    headers = bearer(world.alice)
    form = {**headers, "content-type": "application/x-www-form-urlencoded"}
    refused(world, 400, "POST", "/2/messages/set-message-read", content=b"read=true", headers=form)
    bad_read = f"messageId={world.to_alice}&read=maybe".encode()
    refused(world, 400, "POST", "/2/messages/set-message-read", content=bad_read, headers=form)
    refused(world, 400, "POST", "/2/messages/set-message-read", content=b"\xff\xfe", headers=form)
    as_json = {**headers, "content-type": "application/json"}
    refused(world, 400, "POST", "/2/messages/set-message-read", content=b"{", headers=as_json)
    refused(world, 400, "POST", "/2/messages/set-message-read", content=b"[1]", headers=as_json)
    xml = {**headers, "content-type": "application/xml"}
    refused(world, 400, "POST", "/2/messages/set-message-read", content=b"<a/>", headers=xml)


# -- huge values and NUL bytes --------------------------------------------------------------------


def test_huge_values_are_refused(world: World) -> None:
    huge = "x" * 10_000
    refused(world, 400, "POST", "/authorize", json={"username": huge, "password": PASSWORD})
    refused(world, 400, "POST", "/refresh-session", json={"username": "BOB", "refreshToken": huge})
    refused(world, 413, "POST", "/authorize", content=b" " * 300_000 + b"{}")
    refused(world, 413, "POST", "/message/inbox/delete", content=b"[" * 300_000, headers=bare(world.bob))
    write = {"subject": huge, "body": "b", "recipients": [{"id": "ALICE"}]}
    refused(world, 400, "POST", "/2/messages/write-message", json=write, headers=bearer(world.bob))
    write = {
        "subject": "s",
        "body": "b" * (world.settings.max_body_bytes + 1),
        "recipients": [{"id": "ALICE"}],
    }
    refused(world, 413, "POST", "/2/messages/write-message", json=write, headers=bearer(world.bob))
    send = {**bare(world.alice), "as2-to": "BOB"}
    refused(world, 400, "POST", "/message/submit", content=b"x", headers={**send, "as2-to": "B," * 5000})
    refused(world, 400, "POST", "/message/submit", content=b"x", headers={**send, "subject": huge})
    refused(world, 400, "POST", "/message/submit", content=b"x", headers={**send, "idempotency-key": huge})
    refused(world, 400, "POST", "/message/submit", content=b"x", headers={**send, "as2-from": huge})
    refused(world, 401, "GET", "/message/inbox", headers=bare(huge))
    refused(world, 401, "GET", "/2/messages/get-received-messages", headers=bearer(huge))
    refused(world, 400, "GET", "/message/inbox", params={"subject": huge}, headers=bare(world.bob))
    refused(world, 400, "GET", "/files/" + huge)


def test_nul_bytes_are_refused(world: World) -> None:
    refused(world, 401, "POST", "/authorize", json={"username": "BOB\x00", "password": PASSWORD})
    refused(world, 401, "POST", "/authorize", json={"username": "BOB", "password": "pass\x00word"})
    refused(world, 401, "POST", "/authorize", json={"tokenID": "mrk_\x00", "tokenSecret": "\x00"})
    refused(world, 401, "POST", "/refresh-session", json={"username": "BOB", "refreshToken": "\x00"})
    write = {"subject": "s", "body": "b", "recipients": [{"id": "ALICE\x00"}]}
    refused(world, 400, "POST", "/2/messages/write-message", json=write, headers=bearer(world.bob))
    write = {"subject": "s", "body": "b", "recipients": [{"id": "ALICE"}], "attachmentIds": ["\x00"]}
    refused(world, 400, "POST", "/2/messages/write-message", json=write, headers=bearer(world.bob))
    form = {**bearer(world.alice), "content-type": "application/x-www-form-urlencoded"}
    refused(world, 404, "POST", "/2/messages/set-message-read", content=b"messageId=%00", headers=form)
    refused(world, 404, "GET", "/message/inbox/%00", headers=bare(world.bob))
    refused(world, 400, "GET", "/message/inbox", params={"partnerAS2Id": "A\x00"}, headers=bare(world.bob))
    refused(
        world, 400, "POST", "/message/inbox/delete", json={"as2MessageIds": "\x00"}, headers=bare(world.bob)
    )


# -- ids: malformed, and another mailbox's --------------------------------------------------------

ID_ROUTES = [
    ("GET", "/message/inbox/{}"),
    ("DELETE", "/message/inbox/{}"),
    ("POST", "/message/inbox/{}/markUnread"),
    ("GET", "/message/inbox/{}/attachments"),
    ("GET", "/message/inbox/{}/mdn"),
    ("GET", "/message/outbox/{}"),
    ("DELETE", "/message/outbox/{}"),
    ("GET", "/message/outbox/{}/attachments"),
    ("GET", "/message/outbox/{}/mdn"),
]
BAD_IDS = [
    "..",
    "../../etc/passwd",
    "%2e%2e%2f%2e%2e",
    "<>",
    " ",
    "x" * 5000,
    "20260101120000000000_ABCDEF",
    "<20260101120000000000_ABCDEF@mft>",
    "\u202e",
    "*",
    "'; DROP TABLE messages; --",
]


def segment(raw: str) -> str:
    """``raw`` as one path segment, dots encoded too (HTTP clients resolve a literal ``..``
    before sending; a hostile client need not, and the server decodes ``%2E`` to ``.``)."""
    return quote(raw, safe="").replace(".", "%2E")


def test_bad_ids_are_404_on_every_id_route(world: World) -> None:
    for method, template in ID_ROUTES:
        for raw in BAD_IDS:
            refused(world, 404, method, template.format(segment(raw)), headers=bare(world.bob))


def _alike(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "errors"}


def test_another_mailboxs_ids_are_404_exactly_like_unknown_ones(world: World) -> None:
    """BOB asks for ALICE's received message and for ALICE's sent one, in every spelling: each
    answer is the 404 an id that was never used gets, word for word (it exists is never said)."""
    unknown = "20200101000000000000_000000"
    theirs = {
        "inbox": world.to_alice,  # in ALICE's inbox (BOB sent it)
        "outbox": world.to_bob,  # in ALICE's outbox (BOB received it)
    }
    for method, template in ID_ROUTES:
        box = template.split("/")[2]
        their_id = theirs[box]
        expected = refused(world, 404, method, template.format(unknown), headers=bare(world.bob))
        for spelled in (their_id, f"<{their_id}>", quote(f"<{their_id}>", safe=""), their_id.lower()):
            for token in (bare(world.bob), bearer(world.bob)):
                body = refused(world, 404, method, template.format(spelled), headers=token)
                assert _alike(body) == _alike(expected), (method, template, spelled)
    form = {**bearer(world.bob), "content-type": "application/x-www-form-urlencoded"}
    expected = refused(
        world, 404, "POST", "/2/messages/set-message-read", content=f"messageId={unknown}", headers=form
    )
    for spelled in (world.to_alice, f"<{world.to_alice}>", quote(world.to_alice, safe="")):
        body = refused(
            world, 404, "POST", "/2/messages/set-message-read", content=f"messageId={spelled}", headers=form
        )
        assert body == expected


def test_batch_deletes_skip_another_mailboxs_ids(world: World) -> None:
    before = world.snapshot()
    for path, theirs in (("/message/inbox/delete", world.to_alice), ("/message/outbox/delete", world.to_bob)):
        response = world.api.post(
            path, json={"as2MessageIds": [theirs, f"<{theirs}>", "nope", "../x"]}, headers=bare(world.bob)
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"deleted": []}
    assert_unchanged(world, before, "batch deletes")


# -- paging values --------------------------------------------------------------------------------

MFT_LISTS = ["/message/inbox", "/message/outbox", "/message/outbox/queued", "/message/outbox/failed"]
BAD_PAGING = [
    {"pageLength": "0"},
    {"pageLength": "101"},
    {"pageLength": "-1"},
    {"pageLength": "abc"},
    {"pageLength": "1e3"},
    {"pageLength": "99999999999999999999"},
    {"pageLength": "\u0661"},  # an Arabic-Indic digit: isdigit() yet not ASCII
    {"pageOffset": "-1"},
    {"pageOffset": "x"},
    {"pageOffset": "1000000001"},
    {"sortDir": "x"},
    {"sortDir": "ascending"},
    {"fetchAll": "maybe"},
]


def test_bad_paging_values_are_400_with_the_field_named(world: World) -> None:
    for path in [*MFT_LISTS, "/message/outbox/incomplete"]:
        for params in BAD_PAGING:
            if "fetchAll" in params and path != "/message/inbox":
                continue
            body = refused(world, 400, "GET", path, params=params, headers=bare(world.alice))
            assert body["errors"][0]["field"] == next(iter(params)), body
    for path in ("/2/messages/get-received-messages", "/2/messages/get-sent-messages"):
        for params in (
            {"limit": "0"},
            {"limit": "1001"},
            {"limit": "abc"},
            {"offset": "-1"},
            {"offset": "x"},
        ):
            refused(world, 400, "GET", path, params=params, headers=bearer(world.alice))


# -- hostile file names ---------------------------------------------------------------------------

ACCEPTED_NAMES = {
    "../../etc/passwd": "passwd",
    "C:\\x": "x",
    "..\\..\\win.ini": "win.ini",
    "/abs/path.txt": "path.txt",
}
REFUSED_NAMES = [
    "NUL\x00name",
    "a\r\nb",
    "a\nSet-Cookie: x",
    "\u202etxt.exe",
    "x" * 10_000,
    "../",
    "C:\\",
    " . ",
]


def outside_files(root: Path, store: Path) -> set[str]:
    """Every file under the test's folder but the payload store and the database's own."""
    return {
        str(p)
        for p in root.rglob("*")
        if p.is_file() and store not in p.parents and not p.name.startswith("mailroom.db")
    }


def multipart_body(filename: str) -> tuple[bytes, str]:
    """A form with one file part whose ``filename`` is sent byte for byte as given."""
    boundary = "hostileboundary"
    body = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/plain\r\n\r\n"
        "data\r\n"
        f"--{boundary}--\r\n"
    ).encode("utf-8", "surrogateescape")
    return body, f"multipart/form-data; boundary={boundary}"


def _stored_names(world: World) -> set[str]:
    with world.container.db.read() as conn:
        return set(conn.execute(select(tables.attachments.c.name)).scalars())


def test_hostile_file_names_are_metadata_only(world: World, tmp_path: Path) -> None:
    """A traversal or a drive letter keeps the last component as the name; control characters,
    CR/LF, NUL, reordering marks and over-long names are refused with nothing stored. Either way
    no file is made outside the payload store (nor in the working directory)."""
    store = world.settings.data_dir / "payloads"
    root = tmp_path
    outside = outside_files(root, store)
    cwd = set(os.listdir())
    send = {**bare(world.alice), "as2-to": "BOB"}
    for name, kept in ACCEPTED_NAMES.items():
        header = world.api.post("/message/submit", content=b"x", headers={**send, "attachment-name": name})
        assert header.status_code == 202, header.text
        upload = world.api.post(
            "/2/attachments", params={"name": name}, content=b"y", headers=bearer(world.bob)
        )
        assert upload.status_code == 200, upload.text
        content, media = multipart_body(name)
        form = world.api.post("/message/submit", content=content, headers={**send, "content-type": media})
        assert form.status_code == 202, form.text
        assert kept in _stored_names(world)
        assert name not in _stored_names(world)
    for name in REFUSED_NAMES:
        encoded = name.encode("utf-8")
        if b"\r" not in encoded and b"\n" not in encoded and b"\x00" not in encoded:
            refused(
                world,
                400,
                "POST",
                "/message/submit",
                content=b"x",
                headers={**send, "attachment-name": encoded},
            )
            refused(
                world,
                400,
                "POST",
                "/2/attachments",
                content=b"x",
                headers={**bearer(world.bob), "attachment-name": encoded},
            )
        refused(
            world,
            400,
            "POST",
            "/2/attachments",
            params={"name": name},
            content=b"x",
            headers=bearer(world.bob),
        )
        content, media = multipart_body(name)
        refused(
            world, 400, "POST", "/message/submit", content=content, headers={**send, "content-type": media}
        )
        refused(
            world,
            400,
            "POST",
            "/2/attachments",
            content=content,
            headers={**bearer(world.bob), "content-type": media},
        )
    assert outside_files(root, store) == outside
    assert set(os.listdir()) == cwd
    assert not Path("/etc/passwd.dat").exists()


# -- signed links ---------------------------------------------------------------------------------


def test_expired_and_altered_links_are_403(world: World, clock: FixedClock) -> None:
    token = world.link.rsplit("/", 1)[-1]
    if "/files/" in world.link:  # the filesystem store's links (S3 presigns its own)
        assert world.api.get(world.link).status_code == 200
        payload, _, mac = token.partition(".")
        flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
        for altered in (f"{flipped}.{mac}", f"{payload}.{mac[:-1]}", f"{payload}.", payload, token + "x"):
            refused(world, 403, "GET", f"/files/{altered}")
    receipt = world.receipt_token
    assert world.api.get(f"/files/{receipt}").status_code == 200
    for altered in ("x", ".", "..", "a.b", receipt[::-1], "é", "\x00", "%00"):
        refused(world, 403, "GET", f"/files/{segment(altered)}")
    # a "/" (sent as %2F) makes it another path, no link's: 404, still in the face's shape
    refused(world, 404, "GET", f"/files/{segment('../../etc/passwd')}")
    refused(world, 404, "GET", f"/files/{receipt}/x")
    clock.advance(world.settings.link_lifetime + timedelta(seconds=1))
    refused(world, 403, "GET", f"/files/{receipt}")
    refused(world, 403, "GET", f"/files/{receipt}", headers={"range": "bytes=0-1"})
    if "/files/" in world.link:
        refused(world, 403, "GET", f"/files/{token}")


# -- tokens ---------------------------------------------------------------------------------------


def test_a_spent_refresh_token_is_401_and_revokes_the_chain(world: World) -> None:
    first = login(world.api, username="ALICE", password=PASSWORD)
    second = world.api.post(
        "/refresh-session", json={"username": "ALICE", "refreshToken": first["refreshToken"]}
    )
    assert second.status_code == 200
    pair = second.json()
    assert world.api.get("/message/inbox", headers=bare(pair["apiToken"])).status_code == 200
    refused(
        world,
        401,
        "POST",
        "/refresh-session",
        json={"username": "ALICE", "refreshToken": first["refreshToken"]},
    )
    # the chain is revoked: its newest access token (ttl 0: at once) and refresh token are refused
    refused(world, 401, "GET", "/message/inbox", headers=bare(pair["apiToken"]))
    refused(world, 401, "GET", "/2/messages/get-received-messages", headers=bearer(pair["apiToken"]))
    refused(world, 401, "GET", "/message/inbox", headers=bare(first["apiToken"]))
    refused(
        world,
        401,
        "POST",
        "/refresh-session",
        json={"username": "ALICE", "refreshToken": pair["refreshToken"]},
    )
    # other chains of the same mailbox are untouched
    assert world.api.get("/message/inbox", headers=bare(world.alice)).status_code == 200


def test_another_mailboxs_token_and_as2_from(world: World) -> None:
    send = {"as2-to": "ALICE", "as2-from": "BOB"}
    refused(world, 403, "POST", "/message/submit", content=b"x", headers={**bare(world.alice), **send})
    refused(world, 403, "POST", "/message/submit", content=b"x", headers={**bearer(world.alice), **send})
    pair = login(world.api, username="BOB", password=PASSWORD)
    refused(
        world,
        401,
        "POST",
        "/refresh-session",
        json={"username": "ALICE", "refreshToken": pair["refreshToken"]},
    )
    # refused under the wrong username, the refresh token is not spent
    again = world.api.post("/refresh-session", json={"username": "BOB", "refreshToken": pair["refreshToken"]})
    assert again.status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        "",
        "Bearer",
        "Bearer ",
        "Basic abc",
        "v1.x.y",
        "v1..",
        "NHSMESH BOB:x:1:202601010000:abc",
        "a b c",
        "é",
    ],
)
def test_bad_authorization_values_are_401_on_both_shapes(world: World, token: str) -> None:
    for path in ("/message/inbox", "/message/outbox", "/2/messages/get-sent-messages"):
        refused(world, 401, "GET", path, headers={"authorization": token.encode()} if token else {})
    refused(
        world,
        401,
        "POST",
        "/message/submit",
        content=b"x",
        headers={"authorization": token.encode(), "as2-to": "BOB"},
    )
    refused(world, 401, "POST", "/2/attachments", content=b"x", headers={"authorization": token.encode()})


def test_a_read_only_tokens_writes_are_403_and_change_nothing(world: World) -> None:
    """An API key made read-only logs in and reads; every write is 403 and changes nothing."""
    ro = world.bob_read_only
    mine = world.to_bob  # in BOB's inbox
    sent = world.to_alice  # in BOB's outbox
    form = {"content-type": "application/x-www-form-urlencoded"}
    for token in (bare(ro), bearer(ro)):
        refused(world, 403, "POST", "/message/submit", content=b"x", headers={**token, "as2-to": "ALICE"})
        content, media = multipart_body("a.txt")
        refused(
            world,
            403,
            "POST",
            "/message/submit",
            content=content,
            headers={**token, "as2-to": "ALICE", "content-type": media},
        )
        refused(world, 403, "POST", f"/message/inbox/{mine}/markUnread", headers=token)
        refused(world, 403, "DELETE", f"/message/inbox/{mine}", headers=token)
        refused(world, 403, "POST", "/message/inbox/delete", json={"as2MessageIds": [mine]}, headers=token)
        refused(world, 403, "DELETE", f"/message/outbox/{sent}", headers=token)
        refused(
            world, 403, "POST", "/message/outbox/delete", json={"messageIdentifiers": [sent]}, headers=token
        )
        write = {"subject": "s", "body": "b", "recipients": [{"id": "ALICE"}]}
        refused(world, 403, "POST", "/2/messages/write-message", json=write, headers=token)
        refused(
            world,
            403,
            "POST",
            "/2/messages/set-message-read",
            content=f"messageId={mine}",
            headers={**token, **form},
        )
        refused(world, 403, "POST", "/2/attachments", params={"name": "a"}, content=b"x", headers=token)
        # reads work and leave the store as it was (no read flag, no retrieval recorded)
        before = world.snapshot()
        for path in (
            f"/message/inbox/{mine}",
            f"/message/inbox/{mine}?markAsRead=true",
            f"/message/inbox/{mine}/attachments",
            "/message/inbox",
            f"/message/outbox/{sent}",
            "/2/messages/get-received-messages",
        ):
            assert world.api.get(path, headers=token).status_code == 200, path
        assert_unchanged(world, before, token)


# -- refused submits ------------------------------------------------------------------------------


def test_a_submit_refused_for_its_recipients_stores_nothing(world: World) -> None:
    """Recipients are checked before the body is stored: no staged attachment is left behind."""
    send = bare(world.alice)
    for to in ("NOBODY", "NOBODY, ALSO_NOBODY", " , ", "<>", "BOB\x01"):
        refused(world, 400, "POST", "/message/submit", content=b"x" * 70_000, headers={**send, "as2-to": to})
        content, media = multipart_body("a.txt")
        refused(
            world,
            400,
            "POST",
            "/message/submit",
            content=content,
            headers={**send, "as2-to": to, "content-type": media},
        )
    refused(world, 400, "POST", "/message/submit", content=b"x", headers=send)  # no AS2-To at all
    too_many = ",".join(f"M{n}" for n in range(world.settings.max_recipients + 1))
    refused(world, 400, "POST", "/message/submit", content=b"x", headers={**send, "as2-to": too_many})
