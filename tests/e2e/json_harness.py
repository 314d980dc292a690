"""The JSON messaging API seen from the outside, for end-to-end tests against real servers.

A :class:`JsonClient` logs in with ``POST /authorize`` (mailbox id and password) and sends the
token bare in ``Authorization``, as MFT Gateway's clients do. The helpers here list every face a
message can show up on (the recipient's JSON and MESH inboxes, the sender's outbox lists, both
shapes), so a test can say "nowhere" or "exactly once" in one line.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.e2e.harness import MIB, PASSWORD, Mailroom, Payload, inbox, sha256_of

#: Settings for servers that take attachments larger than MESH's 100 MB request limit.
BIG_BODIES = {"MAILROOM_MAX_CHUNK_BYTES": str(4 * 1024 * MIB)}

OUTBOX_LISTS = (
    "/message/outbox",
    "/message/outbox/queued",
    "/message/outbox/failed",
    "/message/outbox/incomplete",
)


@dataclass
class JsonClient:
    """An httpx client logged in to the JSON API as one mailbox."""

    http: httpx.Client
    mailbox: str

    def submit(
        self,
        body: bytes | Iterable[bytes],
        *,
        to: str = "BOB",
        name: str = "data.bin",
        key: str | None = None,
        subject: str = "e2e",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = {"AS2-To": to, "Subject": subject, "Attachment-Name": name}
        sent.update({"Idempotency-Key": key} if key else {})
        sent.update(headers or {})
        return self.http.post("/message/submit", content=body, headers=sent)  # type: ignore[arg-type]

    def submitted(self, body: bytes | Iterable[bytes], **options: object) -> str:
        """Submit and return the new message's id (asserting 202)."""
        response = self.submit(body, **options)  # type: ignore[arg-type]
        assert response.status_code == 202, response.text
        message_id: str = response.json()["as2MessageId"]
        return message_id

    def stage(self, body: bytes | Iterable[bytes], name: str = "staged.bin") -> httpx.Response:
        """D4Science's first step: one attachment, not yet a message."""
        return self.http.post("/2/attachments", params={"name": name}, content=body)  # type: ignore[arg-type]

    def write_message(self, attachment_ids: list[str], to: str = "BOB") -> httpx.Response:
        return self.http.post(
            "/2/messages/write-message",
            json={
                "subject": "two-step",
                "body": "",
                "recipients": [{"id": to}],
                "attachmentIds": attachment_ids,
            },
        )

    # -- what each face lists -------------------------------------------------------------------
    def json_inbox(self) -> list[str]:
        """Every message in this mailbox's JSON inbox (read or not), from both shapes (they must agree)."""
        mft = self._mft_ids("/message/inbox", fetchAll="true")
        d4 = self.http.get("/2/messages/get-received-messages")
        assert d4.status_code == 200, d4.text
        d4_ids = sorted(record["id"] for record in d4.json()["result"])
        assert sorted(mft) == d4_ids, (mft, d4_ids)
        return mft

    def outbox_ids(self) -> dict[str, list[str]]:
        """Every sent-message list of both shapes, by path."""
        lists = {path: self._mft_ids(path) for path in OUTBOX_LISTS}
        d4 = self.http.get("/2/messages/get-sent-messages")
        assert d4.status_code == 200, d4.text
        lists["/2/messages/get-sent-messages"] = [record["id"] for record in d4.json()["result"]]
        return lists

    def _mft_ids(self, path: str, **params: str) -> list[str]:
        found: list[str] = []
        while True:
            response = self.http.get(
                path, params={**params, "pageLength": "100", "pageOffset": str(len(found))}
            )
            assert response.status_code == 200, response.text
            page = [record["as2MessageId"] for record in response.json()["messages"]]
            found += page
            if len(page) < 100:
                return found

    def attachment_urls(self, message_id: str, *, incoming: bool = True) -> list[tuple[str, str]]:
        """(name, signed url) of each attachment of a message."""
        box = "inbox" if incoming else "outbox"
        response = self.http.get(f"/message/{box}/{message_id}/attachments")
        assert response.status_code == 200, response.text
        return [(item["name"], item["url"]) for item in response.json()["attachments"]]

    def received(self, message_id: str) -> dict[str, object]:
        response = self.http.get(f"/message/inbox/{message_id}", params={"markAsRead": "false"})
        assert response.status_code == 200, response.text
        record: dict[str, object] = response.json()
        return record


def login(
    server: Mailroom, mailbox: str, *, timeout: float = 60.0, base_url: str | None = None
) -> JsonClient:
    """Log in as ``mailbox`` (its password) and keep the token on the client."""
    http = httpx.Client(base_url=base_url or server.process.base_url, timeout=timeout)
    server._clients.append(http)  # closed with the server's own clients (kill, stop)
    answer = http.post("/authorize", json={"username": mailbox, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    http.headers["authorization"] = answer.json()["apiToken"]
    return JsonClient(http, mailbox)


def fetch_url(
    url: str, *, timeout: float = 120.0, headers: dict[str, str] | None = None
) -> tuple[int, str, int]:
    """(status, sha256, length) of a signed link's file, streamed (no token)."""
    with httpx.Client(timeout=timeout) as http, http.stream("GET", url, headers=headers) as response:
        if response.status_code not in (200, 206):
            response.read()
            return response.status_code, "", 0
        digest, size = sha256_of(response)
        return response.status_code, digest, size


def everywhere(server: Mailroom, sender: str = "ALICE", recipient: str = "BOB") -> dict[str, list[str]]:
    """Every id a message could be listed under, on every face, by face."""
    faces = {f"{sender} {path}": ids for path, ids in login(server, sender).outbox_ids().items()}
    faces[f"{recipient} JSON inbox"] = login(server, recipient).json_inbox()
    faces[f"{recipient} MESH inbox"] = inbox(server.client(recipient))
    return faces


def listed_ids(server: Mailroom) -> set[str]:
    return {message_id for ids in everywhere(server).values() for message_id in ids}


def streamed(payload: Payload, *, pause: float = 0.0, after: int = 0) -> Iterator[bytes]:
    """``payload``'s pieces; with ``pause``, sleeps that long before each piece past ``after``
    bytes (a slow client, so a kill lands mid-body)."""
    import time

    sent = 0
    for piece in payload.pieces():
        if pause and sent >= after:
            time.sleep(pause)
        yield piece
        sent += len(piece)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def form_body(boundary: str, parts: list[tuple[str, Payload]]) -> Iterator[bytes]:
    """A ``multipart/form-data`` body, one file part per payload, generated as it is sent."""
    for name, payload in parts:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        yield from payload.pieces()
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def form_headers(boundary: str) -> dict[str, str]:
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def attachment_rows(data_dir: Path) -> list[str]:
    """Every attachment row the server committed (read straight from its SQLite database)."""
    connection = sqlite3.connect(f"file:{data_dir / 'mailroom.db'}?mode=ro", uri=True)
    try:
        return sorted(row[0] for row in connection.execute("SELECT attachment_id FROM attachments"))
    finally:
        connection.close()
