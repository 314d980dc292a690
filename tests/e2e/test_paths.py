"""Hostile path parameters and headers get protocol errors and never touch files outside the data dir.

Requests go out byte for byte (httpcore's ``target`` extension), so ``..``, ``%2F``, ``%00``
and friends reach the server unnormalised. Afterwards: no 500 in any answer or in the log,
nothing changed next to the data directory, and every file name inside it is one the server
generates itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.e2e.harness import SERVER_PATHS, WORKFLOW, Mailroom, download, send

LONG = "A" * 5000
ZERO_ID = "20200101000000000000_ABCDEF"  # looks generated, does not exist


def snapshot(root: Path, skip: set[Path]) -> dict[str, tuple[int, str]]:
    """{relative path: (mode, sha256)} of every file and directory under ``root`` except ``skip``."""
    found: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found[str(path.relative_to(root))] = (path.stat().st_mode, digest)
    return found


@pytest.fixture(scope="module")
def world(shared_server: Mailroom) -> Iterator[dict[str, str]]:
    """Decoy files next to the data dir; a delivered and a half-sent message; the snapshot before."""
    root = shared_server.data_dir.parent
    for decoy in ("etc/passwd", "etc/x", "outside/payloads/objects/x", "tmp/upload-x"):
        (root / decoy).parent.mkdir(parents=True, exist_ok=True)
        (root / decoy).write_text(f"decoy {decoy}\n")
    alice = shared_server.client("ALICE")
    ids = {"done": send(alice, b"hello bob"), "pending": send(alice, b"part one", chunks="1:2")}
    skip = {shared_server.data_dir, shared_server.process.log_path}
    before = snapshot(root, skip)
    yield ids
    assert snapshot(root, skip) == before, "files outside the data directory changed"


def raw(client: httpx.Client, method: str, target: str, **kw: object) -> httpx.Response:
    """Send ``target`` exactly as written (no normalisation of dots or escapes)."""
    return client.request(method, "/", extensions={"target": target.encode()}, **kw)  # type: ignore[arg-type]


PATH_ATTACKS = [
    # (sender?, method, target template, expected status)
    ("ALICE", "POST", "/messageexchange/..%2F..%2Fetc/outbox", 404),
    ("ALICE", "POST", "/messageexchange/%2Fetc%2Fpasswd/outbox", 404),
    ("ALICE", "POST", "/messageexchange/ALICE%00/outbox", 403),
    ("ALICE", "POST", f"/messageexchange/{LONG}/outbox", 403),
    ("BOB", "GET", "/messageexchange/BOB/inbox/..%2F..%2F..%2Fetc%2Fpasswd", 404),
    ("BOB", "GET", "/messageexchange/BOB/inbox/%2Fetc%2Fpasswd", 404),
    ("BOB", "GET", "/messageexchange/BOB/inbox/..", 404),
    ("BOB", "GET", "/messageexchange/BOB/inbox/%2E%2E", 404),
    ("BOB", "GET", "/messageexchange/BOB/inbox/..%5C..%5Cetc%5Cpasswd", 404),
    ("BOB", "GET", "/messageexchange/BOB/inbox/{done}%00", 404),
    ("BOB", "GET", "/messageexchange/BOB/inbox/{done}%2F..%2F{pending}", 404),
    ("BOB", "GET", f"/messageexchange/BOB/inbox/{LONG}", 404),
    ("BOB", "GET", "/messageexchange/BOB/inbox/{done}/..%2F1", 404),
    ("BOB", "GET", "/messageexchange/BOB/inbox/{done}/-1", 400),
    ("BOB", "GET", "/messageexchange/BOB/inbox/{done}/1%00", 400),
    ("BOB", "GET", "/messageexchange/BOB/inbox/{done}/99999999999999999999", 404),
    ("BOB", "GET", f"/messageexchange/BOB/inbox/{{done}}/{'9' * 4000}", 404),
    ("BOB", "HEAD", "/messageexchange/BOB/inbox/..%2Fx", 405),  # decoded, it names a GET-only route
    ("BOB", "HEAD", f"/messageexchange/BOB/inbox/{LONG}", 404),
    ("BOB", "PUT", "/messageexchange/BOB/inbox/..%2F..%2Fx/status/acknowledged", 404),
    ("BOB", "PUT", "/messageexchange/BOB/inbox/%00/status/acknowledged", 404),
    ("BOB", "PUT", f"/messageexchange/BOB/inbox/{LONG}/status/acknowledged", 404),
    ("ALICE", "POST", "/messageexchange/ALICE/outbox/..%2F..%2Fx/2", 404),
    ("ALICE", "POST", "/messageexchange/ALICE/outbox/..%00/2", 404),
    ("ALICE", "POST", f"/messageexchange/ALICE/outbox/{ZERO_ID}/2", 404),
    ("ALICE", "POST", f"/messageexchange/ALICE/outbox/{LONG}/2", 404),
    ("ALICE", "POST", "/messageexchange/ALICE/outbox/{pending}/..%2F2", 404),
    ("ALICE", "POST", "/messageexchange/ALICE/outbox/{pending}/99999999999999999999", 417),
    ("ALICE", "GET", "/messageexchange/ALICE/outbox/tracking?messageID=..%2F..%2Fetc%2Fpasswd", 404),
    ("ALICE", "GET", "/messageexchange/ALICE/outbox/tracking?messageID=%00", 404),
    ("ALICE", "GET", f"/messageexchange/ALICE/outbox/tracking?messageID={LONG}", 404),
    ("ALICE", "GET", "/messageexchange/ALICE/outbox/tracking/..%2F..%2Fetc", 404),
    ("ALICE", "GET", "/messageexchange/ALICE/outbox/tracking/%00", 404),
    ("ALICE", "GET", f"/messageexchange/ALICE/outbox/tracking/{LONG}", 404),
    ("ALICE", "GET", "/messageexchange/endpointlookup/..%2F..%2Fetc/WF", 404),
    ("BOB", "GET", "/messageexchange/BOB/inbox?continue_from=..%2F..%2Fetc%2Fpasswd%00xxxxxxxxxxxxxx", 400),
]


@pytest.mark.parametrize(("mailbox", "method", "target", "status"), PATH_ATTACKS)
def test_hostile_path_parameters_get_protocol_errors(
    shared_server: Mailroom, world: dict[str, str], mailbox: str, method: str, target: str, status: int
) -> None:
    target = target.replace("{done}", world["done"]).replace("{pending}", world["pending"])
    chunk = target.rsplit("/", 1)[-1]
    chunk_range = f"{chunk}:{chunk}"[:20]  # within the header's length limit
    headers = {"mex-to": "BOB", "mex-workflowid": WORKFLOW, "mex-chunk-range": chunk_range}
    body = b"payload" if method == "POST" else None
    response = raw(shared_server.client(mailbox), method, target, headers=headers, content=body)
    assert response.status_code == status, response.text
    if method != "HEAD":
        assert isinstance(response.json(), dict)


HEADER_ATTACKS = [
    {"mex-filename": "../../etc/x"},
    {"mex-filename": "/etc/passwd"},
    {"mex-filename": "..\\..\\windows\\win.ini"},
    {"mex-filename": "%2e%2e%2f%2e%2e%2fetc%2fx"},
    {"mex-localid": "a/../../b"},
    {"mex-localid": "/" * 300},
    {"mex-subject": "../../../../tmp/x"},
    {"mex-workflowid": "../../etc"},
    {"mex-partnerid": "../../p"},
]


@pytest.mark.parametrize("headers", HEADER_ATTACKS, ids=lambda h: "-".join(h))
def test_hostile_metadata_is_passed_through_never_used_as_a_path(
    shared_server: Mailroom, world: dict[str, str], headers: dict[str, str]
) -> None:
    alice, bob = shared_server.client("ALICE"), shared_server.client("BOB")
    message_id = send(alice, b"metadata only", **headers)
    got = bob.get(f"/messageexchange/BOB/inbox/{message_id}")
    assert got.status_code == 200
    assert got.content == b"metadata only"
    name, value = next(iter(headers.items()))
    assert got.headers[name] == value


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"mex-to": "../BOB"}, 417),
        ({"mex-to": "/etc/passwd"}, 417),
        ({"mex-filename": "../\x01x"}, 400),
        ({"mex-localid": "x\x7f/../y"}, 400),
        ({"mex-chunk-range": "../1"}, 417),
        ({"mex-filename": "x" * 301}, 400),
    ],
)
def test_hostile_headers_are_refused(
    shared_server: Mailroom, world: dict[str, str], headers: dict[str, str], status: int
) -> None:
    alice = shared_server.client("ALICE")
    response = alice.post(
        "/messageexchange/ALICE/outbox",
        content=b"x",
        headers={"mex-to": "BOB", "mex-workflowid": WORKFLOW, **headers},
    )
    assert response.status_code == status, response.text


def test_afterwards_only_server_made_names_and_no_500(shared_server: Mailroom, world: dict[str, str]) -> None:
    assert download(shared_server.client("BOB"), world["done"])[0] == 200
    names = [str(path.relative_to(shared_server.data_dir)) for path in shared_server.data_dir.rglob("*")]
    assert [name for name in names if not SERVER_PATHS.match(name)] == []
    log = shared_server.process.log_tail(100_000)
    assert " 500 " not in log
    assert "Traceback" not in log
