"""A real ``mailroom serve`` logs why it refused a login, in its own log, with no secret in it,
while the client gets only the MESH 403 (docs/operations.md, "Diagnosing login failures")."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from tests.e2e.harness import SHARED_KEY, V2, Mailroom

from mailroom.auth.mesh_hmac import build_header

WRONG_PASSWORD = "Wr0ng-Pa55-e2e"
LINE = re.compile(r"^\S+ \S+ WARNING mailroom\.auth: login refused for mailbox (.*)$", re.MULTILINE)


def refusals(server: Mailroom) -> list[str]:
    return LINE.findall(server.process.log_path.read_text(encoding="utf-8"))


def refused(server: Mailroom, path: str, header: str, v2: bool) -> tuple[httpx.Response, list[str]]:
    """The response to one request, and the refusal lines it added to the server's log (the line
    is written before the response is sent, so it is there when the response arrives)."""
    before = len(refusals(server))
    headers = {"authorization": header, **({"accept": V2} if v2 else {})}
    response = httpx.get(server.process.base_url + path, headers=headers, timeout=30)
    return response, refusals(server)[before:]


def assert_no_secret(lines: list[str], header: str) -> None:
    hmac = header.rsplit(":", 1)[1]
    for secret in (WRONG_PASSWORD, SHARED_KEY, header, header.removeprefix("NHSMESH "), hmac):
        assert all(secret not in line for line in lines), (secret, lines)


@pytest.mark.parametrize("path", ["/messageexchange/ALICE/inbox", "/messageexchange/ALICE/count"])
@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_a_wrong_password_is_logged_as_a_bad_signature(shared_server: Mailroom, path: str, v2: bool) -> None:
    header = build_header("ALICE", WRONG_PASSWORD, SHARED_KEY, nonce=str(uuid.uuid4()), at=datetime.now(UTC))
    response, lines = refused(shared_server, path, header, v2)
    assert response.status_code == 403
    expected = (
        b'{"detail":[{"event":"","code":"","msg":"Invalid Authentication Token"}]}'
        if v2
        else b'{"errorEvent":"","errorCode":"","errorDescription":"Invalid Authentication Token"}'
    )
    assert response.content == expected
    assert len(lines) == 1, lines
    assert lines[0].startswith("'ALICE' from 127.0.0.1: bad signature:")
    assert "wrong password" in lines[0]
    assert "shared key" in lines[0]
    assert_no_secret(lines, header)


def test_clock_skew_is_logged_with_the_offset_and_the_window(shared_server: Mailroom) -> None:
    # a client clock 3 hours slow; the window is MAILROOM_AUTH_CLOCK_SKEW's default, 2 hours
    stamp = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    header = build_header("BOB", "password", SHARED_KEY, nonce=str(uuid.uuid4()), at=stamp)
    response, lines = refused(shared_server, "/messageexchange/BOB/inbox", header, False)
    assert response.status_code == 403
    assert response.content == (
        b'{"errorEvent":"","errorCode":"",'
        b'"errorDescription":"Authentication token timestamp is outside the allowed window"}'
    )
    assert len(lines) == 1, lines
    found = re.search(r"is (\d+) s behind the server's clock .*; the allowed window is ±7200 s", lines[0])
    assert found, lines
    assert 3 * 3600 <= int(found.group(1)) < 3 * 3600 + 600  # whole minutes in the token, plus the time taken
    assert lines[0].startswith("'BOB' from 127.0.0.1: clock skew:")
    assert_no_secret(lines, header)
