"""Limits at the HTTP edge (web/edge.py), over raw sockets against a real server, on both HTTP layers.

Each test is one finding of the security probe (issue 14): what a client can make the server
hold, wait for, or misread before any authentication.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.e2e.edge_client import (
    EDGE_ENV,
    LAYERS,
    closed_by_server,
    connect,
    parse_responses,
    read_all,
    rss_kib,
    send_head,
    send_until_answered,
    token,
)
from tests.e2e.harness import MIB, Mailroom, files_under, inbox, start_mailroom, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=LAYERS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, template_data_dir: Path
) -> Iterator[Mailroom]:
    root = tmp_path_factory.mktemp(f"edge-{request.param}")
    started = start_mailroom(root, template_data_dir, env={**EDGE_ENV, "MAILROOM_HTTP_LAYER": request.param})
    yield started
    started.stop()


def ping_ms(server: Mailroom) -> float:
    began = time.monotonic()
    assert httpx.get(f"{server.process.base_url}/_ping", timeout=10).status_code == 200
    return (time.monotonic() - began) * 1000


# 1. Sizes ----------------------------------------------------------------------------------------


def test_a_huge_header_is_refused_431_before_it_is_all_sent_and_memory_stays_flat(server: Mailroom) -> None:
    before = rss_kib(server.pid)
    sockets, answers = [], []
    for _ in range(8):  # each connection's header would be 4 MiB, never finished
        sock = connect(server)
        sockets.append(sock)
        head = b"GET /messageexchange/ALICE/inbox HTTP/1.1\r\nHost: mailroom\r\nX-Filler: "
        answer, sent = send_until_answered(sock, head, b"a" * 16384, 4 * MIB)
        answer += read_all(sock, 5)[0]
        answers.append((answer, sent))
    grown = rss_kib(server.pid) - before
    assert ping_ms(server) < 2000
    for sock in sockets:
        sock.close()
    for answer, sent in answers:
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
        assert b"connection: close\r\n" in answer.lower()
        assert sent < 4 * MIB  # answered before the client had sent it all
    assert grown < 6 * 1024, f"RSS grew {grown} KiB with 8 oversized heads open"


def test_a_long_url_is_refused_414_before_the_head_ends(server: Mailroom) -> None:
    with connect(server) as sock:
        answer, sent = send_until_answered(sock, b"GET /", b"a" * 1024, MIB)
        answer += read_all(sock, 5)[0]
    assert answer.startswith(b"HTTP/1.1 414 "), answer[:100]
    assert sent < MIB


def test_too_many_headers_are_refused_431(server: Mailroom) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % number for number in range(150))
    with connect(server) as sock:
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: mailroom\r\n" + headers + b"\r\n")
        data, closed = read_all(sock)
    [response] = parse_responses(data)
    assert response.status == 431
    assert response.headers["connection"] == "close"
    assert closed


# 2. Time to send a head --------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed(server: Mailroom) -> None:
    with connect(server) as sock:
        data, closed = read_all(sock, 10)
    assert closed
    assert data == b""  # nothing came of a request: just closed


def test_a_head_sent_a_byte_at_a_time_is_answered_408_and_closed(server: Mailroom) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: mailroom\r\n")
        began, answer = time.monotonic(), b""
        sock.settimeout(0.2)
        while time.monotonic() - began < 10 and not answer:
            try:
                sock.sendall(b"x")
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]


def test_an_idle_keep_alive_connection_is_closed(server: Mailroom) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: mailroom\r\n\r\n")
        data, closed = read_all(sock, 10)
    assert [response.status for response in parse_responses(data)] == [200]
    assert closed


# 3. A body that stops arriving -------------------------------------------------------------------


def test_a_stalled_upload_is_closed_and_frees_its_slot_and_its_temporary_file(server: Mailroom) -> None:
    with connect(server) as sock:
        sock.sendall(send_head("BOB", 2 * MIB) + b"x" * 100_000)  # then nothing more
        assert closed_by_server(sock, 10)
    wait_for(lambda: not files_under(server.uploads), what="the partial upload's file removed")
    # the only upload slot (MAILROOM_MAX_CONCURRENT_UPLOADS=1) is free again
    alice = server.client("ALICE", timeout=10)
    response = alice.post(
        "/messageexchange/ALICE/outbox",
        content=b"y" * 2 * MIB,
        headers={"mex-from": "ALICE", "mex-to": "BOB", "mex-workflowid": "E2E_WORKFLOW"},
    )
    assert response.status_code == 202


# 4. Upgrade --------------------------------------------------------------------------------------


def test_an_upgrade_request_is_refused_and_its_body_never_runs_as_a_request(server: Mailroom) -> None:
    smuggled = (
        f"GET /messageexchange/BOB/inbox HTTP/1.1\r\nHost: mailroom\r\nAuthorization: {token('BOB')}\r\n\r\n"
    )
    head = (
        "POST /_ping HTTP/1.1\r\nHost: mailroom\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        f"Content-Length: {len(smuggled)}\r\n\r\n"
    )
    with connect(server) as sock:
        sock.sendall(head.encode())
        time.sleep(0.3)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(smuggled.encode())
        data, closed = read_all(sock)
    [response] = parse_responses(data)
    assert response.status == 400
    assert response.headers["connection"] == "close"
    assert closed


# 5. Expect: 100-continue refused -----------------------------------------------------------------


def test_an_answer_before_a_100_continue_closes_the_connection(server: Mailroom) -> None:
    with connect(server) as sock:
        sock.sendall(send_head("NOBODY", 2 * MIB, "Expect: 100-continue"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        assert not answer.startswith(b"HTTP/1.1 100 ")
        # the client sends no body, and its next request must not be read as that body
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: mailroom\r\n\r\n")
        data, closed = read_all(sock)
    [response] = parse_responses(answer + data)
    assert 400 <= response.status < 500
    assert response.headers["connection"] == "close"
    assert closed


# 6. A complete request, then garbage -------------------------------------------------------------


@pytest.mark.parametrize("size", [2 * MIB, 10_000])
def test_a_complete_upload_then_garbage_is_answered_first(server: Mailroom, size: int) -> None:
    bob = server.client("BOB")
    waiting = set(inbox(bob))
    with connect(server) as sock:
        sock.sendall(send_head("BOB", size) + b"z" * size + b"\x00GARBAGE\r\n\r\n")
        data, closed = read_all(sock)
    statuses = [response.status for response in parse_responses(data)]
    assert statuses == [202, 400]
    assert closed
    assert len(set(inbox(bob)) - waiting) == 1
