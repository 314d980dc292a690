"""Every refused login is logged for the operator (``mailroom.auth``, WARNING) with its reason,
never with a secret; the client gets exactly the 403 it always got (docs/operations.md,
"Diagnosing login failures")."""

from __future__ import annotations

import base64
import logging
import uuid
from datetime import timedelta

import pytest
from tests.conftest import SHARED_KEY

from mailroom.auth.mesh_hmac import MeshToken, build_header, compute_hash
from mailroom.domain.mailboxes import Mailbox

from ._mesh import V2_TYPE

SECRET = "Carol-s3cret-Pa55"  # CAROL's password: must never reach the log
OTHER_KEY = "Not-The-Server-Key-77"
PEER = "testclient"  # the client address Starlette's TestClient reports

READ_ERROR = "Error reading from Authorization header"
MISMATCH = "Mailbox id does not match token"
INVALID = "Invalid Authentication Token"
INACTIVE = "Request Received from Inactive Mailbox"
STALE = "Authentication token timestamp is outside the allowed window"
REPLAYED = "Error Duplicated Authentication Token"


def exact_body(v2: bool, msg: str, event: str = "", code: str = "") -> bytes:
    """The bytes of the MESH error body, written out (not built the way the server builds it)."""
    if v2:
        return f'{{"detail":[{{"event":"{event}","code":"{code}","msg":"{msg}"}}]}}'.encode()
    return f'{{"errorEvent":"{event}","errorCode":"{code}","errorDescription":"{msg}"}}'.encode()


@pytest.fixture
def carol(container):
    container.mailboxes.add(Mailbox("CAROL", "Carol's box", SECRET))
    container.mailboxes.add(Mailbox("DAVE", "Dave's box", SECRET, active=False))


def signed(mailbox: str, clock, *, password: str = SECRET, key: str = SHARED_KEY, **kw) -> str:
    kw.setdefault("nonce", str(uuid.uuid4()))
    kw.setdefault("at", clock.now())
    return build_header(mailbox, password, key, **kw)


def with_timestamp(mailbox: str, stamp: str) -> str:
    token = MeshToken(mailbox, str(uuid.uuid4()), "0", stamp, "")
    return f"NHSMESH {mailbox}:{token.nonce}:0:{stamp}:{compute_hash(SHARED_KEY, token, SECRET)}"


def refusals(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "mailroom.auth"]


def assert_logged_once(caplog, header: str | None, *expected: str) -> str:
    """One WARNING on ``mailroom.auth`` holding ``expected``, and no secret of any kind."""
    records = refusals(caplog)
    assert [r.levelno for r in records] == [logging.WARNING], caplog.text
    line = records[0].getMessage()
    for part in expected:
        assert part in line, (part, line)
    assert f"from {PEER}" in line
    secrets = [SECRET, SHARED_KEY, OTHER_KEY]
    if header:
        fields = header.removeprefix("NHSMESH ").split(":")
        secrets += [header.strip(), header.removeprefix("NHSMESH ")]
        if len(fields) == 5 and fields[4]:
            secrets.append(fields[4])  # the HMAC
    for secret in filter(None, secrets):
        assert secret not in caplog.text, (secret, caplog.text)
    return line


def stale_header(clock) -> str:
    return signed("CAROL", clock, at=clock.now() - timedelta(hours=3))


def basic_header() -> str:
    return "Basic " + base64.b64encode(f"CAROL:{SECRET}".encode()).decode()


#: (name, path mailbox, header (or a function of the clock), client's msg, event, code,
#:  what the log line must say)
CASES = [
    (
        "no header",
        "CAROL",
        None,
        READ_ERROR,
        "",
        "",
        ["'CAROL'", "malformed header", "no Authorization header"],
    ),
    ("blank", "CAROL", "   ", READ_ERROR, "", "", ["'CAROL'", "malformed header", "blank"]),
    ("scheme", "CAROL", basic_header(), READ_ERROR, "", "", ["'CAROL'", "malformed header", "'Basic'"]),
    (
        "field count",
        "CAROL",
        "NHSMESH CAROL:nonce:1:202601011200",
        READ_ERROR,
        "",
        "",
        ["'CAROL'", "malformed header", "4 colon-separated fields, expected 5"],
    ),
    (
        "nonce count",
        "CAROL",
        "NHSMESH CAROL:nonce:x1:202601011200:abc123",
        READ_ERROR,
        "",
        "",
        ["'CAROL'", "malformed header", "nonce count (field 3) is not a whole number"],
    ),
    (
        "timestamp format",
        "CAROL",
        lambda clock: with_timestamp("CAROL", "soon"),
        STALE,
        "",
        "",
        ["'CAROL'", "malformed header", "timestamp (field 4) is not 12 digits"],
    ),
    (
        "unknown mailbox",
        "NOBODY",
        lambda clock: signed("NOBODY", clock),
        "No mailbox matched",
        "SEND",
        "EPL-151",
        ["'NOBODY'", "unknown mailbox"],
    ),
    (
        "disabled",
        "DAVE",
        lambda clock: signed("DAVE", clock),
        INACTIVE,
        "",
        "",
        ["'DAVE'", "mailbox disabled"],
    ),
    (
        "wrong password",
        "CAROL",
        lambda clock: signed("CAROL", clock, password="not-" + SECRET),
        INVALID,
        "",
        "",
        ["'CAROL'", "bad signature", "password", "shared key"],
    ),
    (
        "wrong shared key",
        "CAROL",
        lambda clock: signed("CAROL", clock, key=OTHER_KEY),
        INVALID,
        "",
        "",
        ["'CAROL'", "bad signature", "password", "shared key"],
    ),
    (
        "clock skew",
        "CAROL",
        stale_header,
        STALE,
        "",
        "",
        ["'CAROL'", "clock skew", "10800 s behind the server's clock", "±7200 s"],
    ),
    (
        "mismatch",
        "CAROL",
        lambda clock: signed("BOB", clock),
        MISMATCH,
        "",
        "",
        ["'CAROL'", "mailbox mismatch", "'BOB'"],
    ),
]


@pytest.mark.parametrize(
    ("path_mailbox", "header", "msg", "event", "code", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_refusal_is_logged_once_with_its_reason(
    client, clock, carol, caplog, v2, path_mailbox, header, msg, event, code, expected
):
    value = header(clock) if callable(header) else header
    sent = {"authorization": value} if value is not None else {}
    caplog.set_level(logging.WARNING, logger="mailroom.auth")
    response = client.get(f"/messageexchange/{path_mailbox}/inbox", headers={**sent, **accept(v2)})
    assert response.status_code == 403
    assert response.content == exact_body(v2, msg, event, code)
    assert_logged_once(caplog, value, *expected)


def accept(v2: bool) -> dict[str, str]:
    return {"accept": V2_TYPE} if v2 else {}


def test_lower_case_ids_name_both_ids_as_received_and_as_compared(client, clock, carol, caplog, v2):
    value = signed("carol", clock)
    caplog.set_level(logging.WARNING, logger="mailroom.auth")
    response = client.get("/messageexchange/carol/inbox", headers={"authorization": value, **accept(v2)})
    assert response.content == exact_body(v2, MISMATCH)
    line = assert_logged_once(caplog, value, "mailbox mismatch")
    assert "the path names 'carol', compared as 'CAROL' (upper-cased)" in line
    assert "the token names 'carol', compared as sent" in line


@pytest.mark.parametrize("route", ["inbox", "count", "send", "acknowledge"])
def test_a_replayed_token_is_logged_once(client, clock, carol, caplog, route, send):
    message_id = send("ALICE", "CAROL") if route == "acknowledge" else ""
    value = signed("CAROL", clock, nonce="fixed", nonce_count=7)
    method, path, extra = {
        "inbox": ("GET", "/messageexchange/CAROL/inbox", {}),
        "count": ("GET", "/messageexchange/CAROL/count", {}),
        "send": ("POST", "/messageexchange/CAROL/outbox", {"mex-to": "ALICE", "mex-workflowid": "WF1"}),
        "acknowledge": ("PUT", f"/messageexchange/CAROL/inbox/{message_id}/status/acknowledged", {}),
    }[route]
    first = client.request(method, path, content=b"x", headers={"authorization": value, **extra})
    assert first.status_code in {200, 202}, first.text
    caplog.set_level(logging.WARNING, logger="mailroom.auth")
    again = client.request(method, path, content=b"x", headers={"authorization": value, **extra})
    assert again.content == exact_body(False, REPLAYED)
    line = assert_logged_once(caplog, value, "'CAROL'", "replayed token", "nonce count 7")
    assert "fixed" not in line  # the nonce is not repeated either


def test_a_refused_send_is_logged_before_its_body_is_read(client, clock, carol, caplog):
    caplog.set_level(logging.WARNING, logger="mailroom.auth")
    value = signed("CAROL", clock, password="wrong")
    response = client.post(
        "/messageexchange/CAROL/outbox",
        content=b"body",
        headers={"authorization": value, "mex-to": "ALICE", "mex-workflowid": "WF1"},
    )
    assert response.content == exact_body(False, INVALID)
    assert_logged_once(caplog, value, "'CAROL'", "bad signature")


def test_a_good_login_logs_nothing(client, clock, carol, caplog):
    caplog.set_level(logging.DEBUG, logger="mailroom.auth")
    for path in ["/messageexchange/CAROL/inbox", "/messageexchange/carol/count"]:
        assert client.get(path, headers={"authorization": signed("CAROL", clock)}).status_code == 200
    assert refusals(caplog) == []


def test_a_request_value_cannot_forge_log_lines(client, clock, carol, caplog):
    caplog.set_level(logging.WARNING, logger="mailroom.auth")
    value = signed("CAROL", clock)
    response = client.get("/messageexchange/CAR%0AOL%0D/inbox", headers={"authorization": value})
    assert response.status_code == 403
    line = assert_logged_once(caplog, value, "mailbox mismatch", r"'CAR\nOL\r'")
    assert "\n" not in line
    assert "\r" not in line
