"""Schema-driven fuzzing of the administration API against a real server over loopback.

The schema is the server's own catalogue (``/api/get-metadata``): for every function it lists,
Hypothesis makes calls with arguments of the declared types and of wrong ones, required ones
left out and unknown ones added, sent as a form or as JSON, by a full administrator, a read-only
one, or with bad credentials; plus malformed and oversized bodies, unknown function names, and
``get-status``/``cancel-async`` with real, made-up and malformed tokens and negative, huge and
non-numeric ``lastKnownStatusVersion``/``millisecondsTimeout``. (The MESH face's fuzz run,
``tests/web/test_openapi_fuzz.py``, drives schemathesis from its OpenAPI document the same way.)

Checked after every call: no 5xx; the answer is the envelope with exactly its keys; a call that
was refused (4xx), that failed (200 with ``statusCode: "failed"``), or that needs only the
``read`` privilege changed nothing in the database; and each invoke (and each refused login or
unreadable body on the other routes) is in the audit log once. The server runs no jobs
(``MAILROOM_JOB_THREADS=0``) and no sweep, so nothing else changes the database while it is
fuzzed. Seeded, and bounded to run in well under a minute.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from tests.e2e.admin_harness import ROOT, VIEWER, check_envelope, serve
from tests.e2e.harness import Mailroom

#: Examples per test; with ~5-10 ms a call the whole module stays near 20 s.
EXAMPLES = 500
SEED = 20261207
#: Compared before and after a call that must change nothing (the audit log is checked apart).
STATE_TABLES = (
    "mailboxes",
    "workflows",
    "messages",
    "message_events",
    "chunks",
    "jobs",
    "job_log",
    "admin_users",
)
#: Whose passwords and privileges the fuzzer must not change: it logs in as them.
OURS = {ROOT[0], VIEWER[0]}
ADMIN_CHANGES = {"SetAdminUserPassword", "DeleteAdminUser", "CreateAdminUser"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, admin_template: Path) -> Iterator[Mailroom]:
    root = tmp_path_factory.mktemp("admin-fuzz")
    shutil.copytree(admin_template, root / "data")
    env = {
        "MAILROOM_JOB_THREADS": "0",  # queued jobs stay queued: nothing changes behind our back
        "MAILROOM_ADMIN_LOCKOUT_FAILURES": "0",  # bad credentials must not lock the fuzzer out
        "MAILROOM_ADMIN_STATUS_WAIT_MAX": "0.05s",  # a valid wait costs at most 50 ms
        "MAILROOM_ADMIN_MAX_BODY_BYTES": "65536",  # oversized bodies stay cheap to send
    }
    started = serve(root / "data", root / "server.log", env=env)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def http(server: Mailroom) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.process.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def catalogue(http: httpx.Client) -> list[dict[str, Any]]:
    body = check_envelope(http.get("/api/get-metadata", auth=VIEWER))
    functions: list[dict[str, Any]] = body["result"]
    assert len(functions) >= 15
    return functions


@pytest.fixture(scope="module")
def tokens(http: httpx.Client) -> list[str]:
    """Tokens of real (queued) jobs, for get-status and cancel-async to aim at."""
    found = []
    for _ in range(2):
        body = check_envelope(http.post("/api/invoke/PurgeExpired", auth=ROOT))
        assert body["statusCode"] == "running"
        found.append(body["token"])
    return found


# -- the database, read beside the server ---------------------------------------------------------


def _rows(data_dir: Path) -> tuple[dict[str, list[tuple[Any, ...]]], int]:
    db = sqlite3.connect(f"file:{data_dir / 'mailroom.db'}?mode=ro", uri=True)
    try:
        state = {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr) for table in STATE_TABLES
        }
        audited = db.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    finally:
        db.close()
    return state, audited


# -- what is sent ---------------------------------------------------------------------------------


#: What a client can put in a header at all (h11 refuses control characters and edge spaces).
HEADER_CHARS = string.ascii_letters + string.digits + "+/=:!@#-_.~ %"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


BAD_CREDENTIALS = st.one_of(
    st.sampled_from(
        [
            _basic("root", "not the password"),
            _basic("ALICE", "password"),  # a mailbox's credentials
            _basic("nobody", ROOT[1]),
            "",
            "Basic",
            "Basic !!!not base64",
            "Basic " + base64.b64encode(b"no colon").decode(),
            "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
            "Bearer abc",
            "basic " + base64.b64encode(b"root:" + b"x" * 3000).decode(),
        ]
    ),
    # (a header value may not end in white space: HTTP clients refuse to send one)
    st.text(alphabet=HEADER_CHARS, min_size=1, max_size=40).map(lambda text: ("Basic " + text).rstrip()),
)
#: Mostly someone who may call: a fuzzer refused at the door tests only the door.
CREDENTIALS = st.integers(0, 9).flatmap(
    lambda n: st.just(_basic(*ROOT)) if n < 4 else st.just(_basic(*VIEWER)) if n < 7 else BAD_CREDENTIALS
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
KNOWN_TEXT = st.sampled_from(
    ["ALICE", "BOB", "alice", "NEWBOX", "", " ", "x" * 300, "../../etc/passwd", "\x00", "fuzzer"]
)
TEXT = st.one_of(KNOWN_TEXT, st.text(max_size=30))
NUMBERS = st.one_of(
    st.sampled_from([-1, 0, 1, 1000, 1001, 10**9, 10**9 + 1, -(10**20), 10**20, 0.5, 1e308, -0.0]),
    st.integers(-5, 2000),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
)
WHOLE_TEXT = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["", "-1", "0", "1", "2147483648", "9" * 40, "1e99", "1.5", "NaN", " 5", "0x10", "true"]),
    st.text(max_size=10),
)


def _right(kind: str) -> st.SearchStrategy[Any]:
    return {"string": TEXT, "number": NUMBERS, "bool": st.booleans(), "json": JSON_VALUES}[kind]


def _wrong(kind: str) -> st.SearchStrategy[Any]:
    others = {
        "string": st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=2)),
        "number": st.one_of(
            TEXT, st.booleans(), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
        ),
        "bool": st.one_of(st.integers(), TEXT),
        "json": st.just(None),
    }
    return others[kind]


@st.composite
def arguments(draw: st.DrawFn, function: dict[str, Any]) -> dict[str, Any]:
    """Arguments for ``function``: mostly well-typed, sometimes one wrong, missing or extra."""
    values: dict[str, Any] = {}
    for arg in function["args"]:
        if arg["optional"] and draw(st.booleans()):
            continue
        if arg["nullable"] and draw(st.integers(0, 5)) == 0:
            values[arg["name"]] = None
            continue
        wrong = draw(st.integers(0, 6)) == 0
        values[arg["name"]] = draw(_wrong(arg["type"]) if wrong else _right(arg["type"]))
    required = [arg["name"] for arg in function["args"] if not arg["optional"]]
    if required and draw(st.integers(0, 6)) == 0:
        values.pop(draw(st.sampled_from(required)), None)
    if draw(st.integers(0, 8)) == 0:
        values[draw(st.text(min_size=1, max_size=12))] = draw(TEXT)
    return values


def _form_value(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else json.dumps(value)


@st.composite
def body(draw: st.DrawFn, values: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """``values`` as a form or JSON (with or without a content type), or a malformed body."""
    choice = draw(st.integers(0, 11))
    if choice <= 4:
        pairs = httpx.QueryParams({name: _form_value(value) for name, value in values.items()})
        return str(pairs).encode(), {"content-type": "application/x-www-form-urlencoded"}
    if choice <= 8:
        kind = draw(st.sampled_from(["application/json", "application/json; charset=utf-8", ""]))
        return json.dumps(values).encode(), {"content-type": kind} if kind else {}
    malformed = draw(
        st.sampled_from(
            [
                (b"{not json", "application/json"),
                (b"[1, 2]", "application/json"),
                (b'"text"', "application/json"),
                (b"[" * 100_000, "application/json"),
                (b"a=1&a=2", "application/x-www-form-urlencoded"),
                (b"\xff\xfe=1", "application/x-www-form-urlencoded"),
                (b"=&&==", "application/x-www-form-urlencoded"),
                (b"<xml/>", "text/xml"),
                (b"x" * 70_000, "application/x-www-form-urlencoded"),
                (b"a=" + b"b" * 70_000, ""),
            ]
        )
    )
    if draw(st.booleans()):
        return malformed[0], {"content-type": malformed[1]} if malformed[1] else {}
    return draw(st.binary(max_size=200)), {
        "content-type": draw(
            st.sampled_from(
                ["", "application/json", "multipart/form-data", "application/x-www-form-urlencoded"]
            )
        )
    }


# -- the checks -----------------------------------------------------------------------------------


def _send(
    http: httpx.Client,
    server: Mailroom,
    path: str,
    content: bytes,
    headers: dict[str, str],
    *,
    method: str = "POST",
) -> tuple[int, dict[str, Any], set[str], int]:
    """Send the call; (status, envelope, the tables whose rows changed, audit rows added)."""
    before, audited_before = _rows(server.data_dir)
    response = http.request(method, path, content=content, headers={k: v for k, v in headers.items() if v})
    assert response.status_code < 500, response.text
    envelope = check_envelope(response)
    after, audited_after = _rows(server.data_dir)
    changed = {table for table in STATE_TABLES if before[table] != after[table]}
    return response.status_code, envelope, changed, audited_after - audited_before


def _body_refused(code: int, envelope: dict[str, Any]) -> bool:
    """Refused for its body (too large, not a form or a JSON object): audited under the name it claims."""
    return code in (413, 415) or (envelope["error"] or {}).get("details") == "BadBody"


def _reached_credentials(code: int, envelope: dict[str, Any]) -> bool:
    """Every invoke of a route that exists is audited, whatever was wrong with it."""
    return not (envelope["error"] or {}).get("details", "").startswith("no such API route")


@st.composite
def invocation(
    draw: st.DrawFn, catalogue: list[dict[str, Any]]
) -> tuple[str, dict[str, Any], str, bytes, dict[str, str]]:
    if draw(st.integers(0, 15)) == 0:
        name = draw(
            st.one_of(
                st.text(min_size=1, max_size=40),
                st.sampled_from(["getserverinfo", "..", "%2e%2e", "x" * 300]),
            )
        )
        function: dict[str, Any] = {"name": name, "args": [], "privilege": "admin"}
    else:
        function = draw(st.sampled_from(catalogue))
    values = draw(arguments(function))
    content, headers = draw(body(values))
    return function["name"], function, draw(CREDENTIALS), content, headers


def test_invoking_any_function_any_way(http, server, catalogue):
    privilege = {entry["name"]: entry["privilege"] for entry in catalogue}

    @seed(SEED)
    @given(call=invocation(catalogue))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(call: tuple[str, dict[str, Any], str, bytes, dict[str, str]]) -> None:
        name, _function, credentials, content, headers = call
        if name in ADMIN_CHANGES and credentials == _basic(*ROOT) and OURS & set(map(str, _strings(content))):
            return  # would change the fuzzer's own logins
        code, envelope, changed, audited = _send(
            http,
            server,
            f"/api/invoke/{quote(name, safe='')}",
            content,
            {"authorization": credentials, **headers},
        )
        refused = code != 200 or envelope["statusCode"] == "failed"
        if envelope["statusCode"] == "running":
            changed -= {"jobs"}  # a long function's job, queued: its own record, like the audit log
        if refused or privilege.get(name) == "read":
            assert not changed, (name, code, envelope)
        if code == 200:
            assert envelope["statusCode"] in {"succeeded", "running", "failed"}
            assert audited == 1, (name, envelope)
        elif _reached_credentials(code, envelope):
            assert audited == 1, (name, code, envelope)
        else:
            assert audited == 0, (name, code, envelope)

    check()


def _strings(content: bytes) -> list[str]:
    """Every value a body may carry, whichever way it is read."""
    text = content.decode("utf-8", "replace")
    found = [value for _name, value in httpx.QueryParams(text).multi_items()]
    try:
        parsed = json.loads(text)
    except ValueError:
        return found
    return found + [str(value) for value in parsed.values()] if isinstance(parsed, dict) else found


@st.composite
def status_call(draw: st.DrawFn, tokens: list[str]) -> tuple[str, dict[str, Any], str, str]:
    path = draw(st.sampled_from(["/api/get-status", "/api/get-status", "/api/cancel-async"]))
    values: dict[str, Any] = {}
    token = draw(
        st.one_of(
            st.sampled_from(tokens),
            st.just("0" * 32),
            st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
            st.sampled_from(["", "../../etc/passwd", "x" * 5000, tokens[0].upper(), tokens[0] + "0"]),
            st.integers(),
            st.none(),
        )
    )
    if draw(st.integers(0, 6)):
        values["token"] = token
    for name in ("lastKnownStatusVersion", "millisecondsTimeout"):
        if draw(st.booleans()):
            values[name] = draw(
                st.one_of(WHOLE_TEXT, st.integers(-(10**20), 10**20), st.floats(), st.booleans(), st.none())
            )
    if draw(st.integers(0, 8)) == 0:
        values[draw(st.text(min_size=1, max_size=10))] = draw(TEXT)
    content, headers = draw(body(values))
    return path, values, draw(CREDENTIALS), content, headers  # type: ignore[return-value]


def test_following_and_cancelling_jobs_any_way(http, server, tokens):
    @seed(SEED)
    @given(call=status_call(tokens))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(call: Any) -> None:
        path, _values, credentials, content, headers = call
        code, envelope, changed, audited = _send(
            http, server, path, content, {"authorization": credentials, **headers}
        )
        if path == "/api/get-status":
            assert not changed, (path, code, envelope)
            assert audited == (1 if code == 401 or _body_refused(code, envelope) else 0), (code, envelope)
        elif code != 200:
            assert not changed, (path, code, envelope)
        if code == 200 and path == "/api/get-status":
            assert envelope["token"] in tokens or envelope["token"] is None
            assert envelope["error"] is None

    check()


def test_the_catalogue_any_way(http, server):
    @seed(SEED)
    @given(method=st.sampled_from(["GET", "POST"]), credentials=CREDENTIALS, sent=body({}))
    @settings(
        max_examples=EXAMPLES // 4, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(method: str, credentials: str, sent: tuple[bytes, dict[str, str]]) -> None:
        content, headers = sent
        code, envelope, changed, _audited = _send(
            http,
            server,
            "/api/get-metadata",
            content,
            {"authorization": credentials, **headers},
            method=method,
        )
        assert not changed
        if code == 200:
            assert [entry["name"] for entry in envelope["result"]][:2] == ["GetServerInfo", "GetStatistics"]

    check()


def test_the_fuzzer_got_past_the_door(server):
    """The runs above must have reached the functions, not only been refused at the door: the
    audit log holds succeeded, failed and refused calls of many functions."""
    db = sqlite3.connect(f"file:{server.data_dir / 'mailroom.db'}?mode=ro", uri=True)
    try:
        outcomes = dict(db.execute("SELECT outcome, count(*) FROM audit_log GROUP BY outcome").fetchall())
        functions = db.execute(
            "SELECT count(DISTINCT function) FROM audit_log WHERE outcome = 'succeeded'"
        ).fetchone()[0]
    finally:
        db.close()
    assert outcomes.get("succeeded", 0) > 20, outcomes
    assert outcomes.get("failed", 0) > 5, outcomes
    assert outcomes.get("refused", 0) > 50, outcomes
    assert functions >= 5, functions  # of the catalogue's functions, with this seed
