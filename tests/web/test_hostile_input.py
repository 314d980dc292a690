"""Property-based hostile input over every MESH route: never a 500, a rejected request changes nothing.

Paths, query values, headers and bodies are random (control characters, traversal attempts,
huge values, malformed and replayed tokens). After each rejected request the database rows
and the files under the data directory must be exactly what they were.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from mailroom.storage.tables import chunks, mailboxes, message_events, messages

ROUTES = [
    ("GET", "/messageexchange/{mailbox}"),
    ("POST", "/messageexchange/{mailbox}"),
    ("POST", "/messageexchange/{mailbox}/outbox"),
    ("POST", "/messageexchange/{mailbox}/outbox/{message_id}/{chunk}"),
    ("GET", "/messageexchange/{mailbox}/inbox"),
    ("GET", "/messageexchange/{mailbox}/inbox/rich"),
    ("GET", "/messageexchange/{mailbox}/outbox/rich"),
    ("GET", "/messageexchange/{mailbox}/count"),
    ("GET", "/messageexchange/{mailbox}/inbox/{message_id}"),
    ("HEAD", "/messageexchange/{mailbox}/inbox/{message_id}"),
    ("GET", "/messageexchange/{mailbox}/inbox/{message_id}/{chunk}"),
    ("PUT", "/messageexchange/{mailbox}/inbox/{message_id}/status/acknowledged"),
    ("GET", "/messageexchange/{mailbox}/outbox/tracking"),
    ("GET", "/messageexchange/{mailbox}/outbox/tracking/{local_id}"),
    ("GET", "/messageexchange/endpointlookup/{ods}/{workflow}"),
    ("GET", "/messageexchange/workflowsearch/{workflow}"),
    ("POST", "/messageexchange/{mailbox}/update"),
    ("GET", "/messageexchange/admin/message/{message_id}"),
    ("POST", "/messageexchange/admin/message/{message_id}/event"),
    ("POST", "/messageexchange/admin/report"),
    ("GET", "/admin/mailbox/{mailbox}"),
]

MEX_HEADERS = [
    "mex-to",
    "mex-from",
    "mex-workflowid",
    "mex-chunk-range",
    "mex-subject",
    "mex-localid",
    "mex-partnerid",
    "mex-filename",
    "mex-content-checksum",
    "mex-content-type",
    "mex-content-encrypted",
    "mex-content-compressed",
    "mex-clientversion",
    "mex-osname",
    "mex-osversion",
    "content-encoding",
    "accept",
    "accept-encoding",
    "content-type",
]

NASTY = [
    "..",
    "../../etc/passwd",
    "%2e%2e%2f",
    "/etc/passwd",
    "ALICE",
    "BOB",
    "x" * 5000,
    "\x00",
    "\x1f",
    "http://evil",
    "1:0",
    "0:1",
    "99999999999999999999",
    "-1",
    "",
    " ",
    "*",
    "!*",
    "NHSMESH ",
    "gzip",
    "deflate",
    "application/vnd.mesh.v2+json",
    "application/vnd.mesh.v999+json",
]

latin1 = st.text(st.characters(min_codepoint=0, max_codepoint=255, exclude_characters="\r\n"), max_size=300)
path_text = st.one_of(
    st.sampled_from(NASTY), st.text(st.characters(max_codepoint=0x2FF), min_size=1, max_size=60)
)
value = st.one_of(st.sampled_from(NASTY), latin1)


def seeded(client, headers, data_dir) -> dict[str, str]:
    """One complete message (ALICE → BOB) and one still uploading, so ids can hit real rows."""
    if data_dir in SEEDED:
        return SEEDED[data_dir]
    done = client.post(
        "/messageexchange/ALICE/outbox",
        content=b"seed",
        headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF"),
    )
    partial = client.post(
        "/messageexchange/ALICE/outbox",
        content=b"part",
        headers=headers("ALICE", mex_to="BOB", mex_workflowid="WF", mex_chunk_range="1:3"),
    )
    SEEDED[data_dir] = {"<DONE>": done.json()["message_id"], "<PARTIAL>": partial.json()["message_id"]}
    return SEEDED[data_dir]


SEEDED: dict[Path, dict[str, str]] = {}


def snapshot(container, data_dir: Path) -> tuple:
    with container.db.read() as conn:
        counts = tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (messages, message_events, chunks, mailboxes)
        )
        statuses = tuple(
            conn.execute(
                select(messages.c.message_id, messages.c.status).order_by(messages.c.message_id)
            ).all()
        )
    files = sorted(
        (str(p.relative_to(data_dir)), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in (data_dir / "payloads" / "objects").rglob("*")
        if p.is_file()
    )
    return counts, statuses, tuple(files)


def request_and_check(client, container, data_dir, route, path, request_headers, params, body):
    """Send one request; assert no 500 and, when it is rejected, no change to rows or files."""
    method, template = route
    before = snapshot(container, data_dir)
    response = client.request(
        method,
        path,
        headers=request_headers,
        params=params,
        content=body if method in ("POST", "PUT") else None,
    )
    event(f"{method} {template.split('/')[-1]} -> {response.status_code}")
    assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert snapshot(container, data_dir) == before, (method, path, response.status_code)
    return response


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from([r for r in ROUTES if "{mailbox}" in r[1] and not r[1].startswith("/admin")]),
    message_id=st.one_of(st.sampled_from(["<DONE>", "<PARTIAL>"]), path_text),
    chunk=st.one_of(st.integers(-1, 4).map(str), path_text),
    extra=st.dictionaries(st.sampled_from(MEX_HEADERS), value, max_size=6),
    query=st.dictionaries(
        st.sampled_from(["max_results", "continue_from", "workflow_filter", "messageID"]),
        st.one_of(st.sampled_from(["<DONE>", "10", "5001", "ABC*"]), value),
        max_size=3,
    ),
    body=st.binary(max_size=500),
    sender=st.sampled_from(["ALICE", "BOB", "BARRY"]),
)
def test_authenticated_requests_never_500(
    client, container, settings, headers, route, message_id, chunk, extra, query, body, sender
):
    ids = seeded(client, headers, settings.data_dir)
    _, template = route
    path = template.format(
        mailbox=sender,
        message_id=quote(ids.get(message_id, message_id), safe=""),
        chunk=quote(chunk, safe=""),
        local_id="x",
    )
    base = {"mex-to": "BOB", "mex-workflowid": "WF"}
    request_headers: dict[str, str | bytes] = {**base, **{k: v.encode("latin-1") for k, v in extra.items()}}
    request_headers.update(headers(sender))
    params = {name: ids.get(text, text) for name, text in query.items()}
    request_and_check(client, container, settings.data_dir, route, path, request_headers, params, body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    mailbox=st.one_of(st.sampled_from(["ALICE", "BOB", "alice", "NOBODY"]), path_text),
    message_id=path_text,
    chunk=st.one_of(st.integers(-5, 10).map(str), path_text),
    other=path_text,
    headers=st.dictionaries(st.sampled_from(MEX_HEADERS), value, max_size=8),
    query=st.dictionaries(
        st.sampled_from(["max_results", "continue_from", "workflow_filter", "messageID", "start_time"]),
        value,
        max_size=3,
    ),
    body=st.binary(max_size=2000),
    token=st.sampled_from(["valid", "replayed", "stale", "garbage", "none", "wrong-mailbox"]),
)
def test_no_500_and_rejections_change_nothing(
    client,
    container,
    settings,
    auth,
    clock,
    route,
    mailbox,
    message_id,
    chunk,
    other,
    headers,
    query,
    body,
    token,
):
    _, template = route
    segments = {
        name: quote(text, safe="")
        for name, text in {
            "mailbox": mailbox,
            "message_id": message_id,
            "chunk": chunk,
            "local_id": other,
            "ods": other,
            "workflow": other,
        }.items()
    }
    path = template.format(**segments)
    request_headers: dict[str, str | bytes] = {name: text.encode("latin-1") for name, text in headers.items()}
    authorization = {
        "valid": lambda: auth(mailbox.upper() if mailbox.isascii() else "ALICE"),
        "replayed": lambda: REPLAYED.setdefault("ALICE", auth("ALICE")),
        "stale": lambda: auth("ALICE", at=clock.now().replace(year=2001)),
        "garbage": lambda: "NHSMESH " + other,
        "none": lambda: None,
        "wrong-mailbox": lambda: auth("BOB"),
    }[token]()
    if authorization is not None:
        request_headers["authorization"] = authorization.encode("utf-8")
    response = request_and_check(
        client, container, settings.data_dir, route, path, request_headers, query, body
    )
    if response.status_code >= 400 and response.content:
        response.json()  # every error body is JSON (mesh-client parses it)


REPLAYED: dict[str, str] = {}
