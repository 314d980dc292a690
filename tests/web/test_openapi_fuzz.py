"""Schema-based fuzzing: schemathesis drives every operation in Mailroom's OpenAPI document.

The document (``/openapi.json``, see ``mailroom.web.wire.openapi``) describes each route's path
values, query values, ``Mex-*`` headers and bodies; schemathesis generates requests from it and
calls the app in-process (ASGI). Most requests are signed with a fresh, valid token for a real
mailbox and aim at a real message, so the fuzzer gets past authentication into the handlers; the
rest keep whatever it made up (garbage, empty or mismatched tokens, unknown ids). No response
may be a 5xx. ``test_hostile_input.py`` adds hand-made hostile values and the no-state-change
check on rejections.
"""

from __future__ import annotations

import zlib

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

MAILBOXES = ("ALICE", "BOB")
#: Per operation and generation mode mix; ~20 operations keep the test near 20 s.
EXAMPLES = 30


def seed(client, headers) -> list[str]:
    """One message ALICE → BOB, one BOB → ALICE, one chunked upload still open.

    Made again before each operation: the sandbox admin routes may have reset the mailboxes.
    """
    ids = []
    for sender, recipient, chunks in (
        ("ALICE", "BOB", "1:1"),
        ("BOB", "ALICE", "1:1"),
        ("ALICE", "BOB", "1:2"),
    ):
        response = client.post(
            f"/messageexchange/{sender}/outbox",
            content=b"fuzz seed",
            headers=headers(sender, mex_to=recipient, mex_workflowid="WF1", mex_chunk_range=chunks),
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["message_id"])
    return ids


def _pick(value: object, options: tuple[str, ...] | list[str]) -> str:
    """A stable choice driven by the generated value (so Hypothesis can shrink it)."""
    return options[zlib.crc32(repr(value).encode()) % len(options)]


def _aim(case, auth, seeded_ids) -> None:
    """Sign three requests in four for a real mailbox, and aim half at a real message."""
    path = case.path_parameters or {}
    if "mailbox" in path and zlib.crc32(repr(case.headers).encode()) % 4:
        path["mailbox"] = _pick(path["mailbox"], MAILBOXES)
        case.headers = {**(case.headers or {}), "authorization": auth(path["mailbox"])}
    if "message_id" in path and zlib.crc32(repr(path["message_id"]).encode()) % 2:
        path["message_id"] = _pick(path["message_id"], seeded_ids)


def fuzz(operation, auth, seeded_ids) -> None:
    """Both generation modes: values the schema allows, and values it forbids."""
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case):
        _aim(case, auth, seeded_ids)
        case.call_and_validate(checks=[not_a_server_error])

    check()


def test_no_server_errors(client, auth, headers):
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18  # every MESH route is in the document
    for operation in operations:
        fuzz(operation, auth, seed(client, headers))
