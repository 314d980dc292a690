"""An unauthenticated send is refused before the server reads (or buffers) any of its body.

A client that declares a body and never sends it must get its 403 at once: the server
authenticates from the headers alone, so it never waits for, nor holds, bytes from a caller
it does not know.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from tests.e2e.harness import WORKFLOW, Mailroom


@pytest.mark.parametrize("declared", [10, 1000, 900_000])
def test_a_send_with_a_bad_token_is_refused_without_waiting_for_its_body(
    shared_server: Mailroom, declared: int
) -> None:
    address = urlsplit(shared_server.process.base_url)
    assert address.scheme == "http"
    assert address.hostname
    assert address.port
    head = (
        "POST /messageexchange/ALICE/outbox HTTP/1.1\r\n"
        f"Host: {address.hostname}\r\n"
        "Authorization: NHSMESH ALICE:not-a-token\r\n"
        f"Mex-To: BOB\r\nMex-WorkflowID: {WORKFLOW}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(head.encode())  # and none of the body
        answer = sock.recv(4096)  # a server waiting for the body would time out here
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
