"""Huge header, query and path values sent to a real server: refused (4xx or a closed connection),
never a 5xx, and the server keeps serving. (In-process tests cannot show this: the limits that
matter here are uvicorn's and its HTTP parser's.) Requests are written on a raw socket, since
HTTP clients refuse to send URLs this long.
"""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime

import pytest
from tests.e2e.harness import PASSWORD, SHARED_KEY, Mailroom, inbox, send

from mailroom.auth.mesh_hmac import build_header

pytestmark = pytest.mark.slow

HUGE = 1024 * 1024
BIG = 64 * 1024


def raw_status(server: Mailroom, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> str:
    """The status code the server answers with, or ``closed`` if it drops the connection."""
    token = build_header("ALICE", PASSWORD, SHARED_KEY, nonce=str(uuid.uuid4()), at=datetime.now(UTC))
    lines = [f"{method} {target} HTTP/1.1", f"host: 127.0.0.1:{server.process.port}"]
    lines += [f"{k}: {v}" for k, v in {"authorization": token, **headers}.items()]
    lines += [f"content-length: {len(body)}", "connection: close"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection(("127.0.0.1", server.process.port), timeout=30) as sock:
        try:
            sock.sendall(request)
            first = sock.makefile("rb").readline()
        except (ConnectionResetError, BrokenPipeError):
            return "closed"
    if not first:
        return "closed"
    status = first.split()[1].decode()
    assert not status.startswith("5"), first
    return status


@pytest.mark.parametrize("size", [BIG, HUGE])
def test_huge_values_are_refused_and_the_server_carries_on(shared_server: Mailroom, size: int) -> None:
    bob = shared_server.client("BOB")
    before = inbox(bob)
    text = "A" * size
    inbox_path = "/messageexchange/ALICE/inbox"
    send_headers = {"mex-to": "BOB", "mex-workflowid": "WF"}
    # a header the route does not read is ignored, whatever its size
    assert raw_status(shared_server, "GET", inbox_path, {"mex-subject": text}) in ("200", "closed", "431")
    results = [
        raw_status(
            shared_server,
            "POST",
            "/messageexchange/ALICE/outbox",
            {**send_headers, "mex-subject": text},
            b"x",
        ),
        raw_status(shared_server, "GET", inbox_path, {"authorization": "NHSMESH " + text}),
        raw_status(shared_server, "GET", f"{inbox_path}?continue_from={text}", {}),
        raw_status(shared_server, "GET", f"{inbox_path}?workflow_filter={text}", {}),
        raw_status(shared_server, "GET", f"{inbox_path}/{text}", {}),
        raw_status(
            shared_server,
            "POST",
            "/messageexchange/ALICE/outbox",
            {**send_headers, "mex-localid": text},
            b"x",
        ),
        raw_status(
            shared_server, "POST", "/messageexchange/ALICE/outbox", {**send_headers, "mex-to": text}, b"x"
        ),
    ]
    assert all(result not in ("200", "202") for result in results), results
    assert inbox(bob) == before  # nothing was accepted
    send(shared_server.client("ALICE"), b"still serving")  # and the server still works
