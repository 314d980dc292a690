"""NHSMESH token parsing and verification (spec §2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailroom.auth import mesh_hmac
from mailroom.errors import AuthenticationFailed

AT = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)


def test_built_header_round_trips_and_verifies():
    header = mesh_hmac.build_header("ALICE", "password", "TestKey", nonce="abc-123", nonce_count=4, at=AT)
    token = mesh_hmac.parse_token(header)
    assert (token.mailbox_id, token.nonce, token.nonce_count, token.timestamp) == (
        "ALICE",
        "abc-123",
        "4",
        "202603011030",
    )
    assert mesh_hmac.hash_matches("TestKey", token, "password")
    assert not mesh_hmac.hash_matches("TestKey", token, "wrong")
    assert not mesh_hmac.hash_matches("OtherKey", token, "password")


def test_hash_matches_the_documented_construction():
    import hashlib
    import hmac

    token = mesh_hmac.parse_token("NHSMESH ALICE:n1:0:202603011030:" + "0" * 64)
    expected = hmac.new(b"TestKey", b"ALICE:n1:0:password:202603011030", hashlib.sha256).hexdigest()
    assert mesh_hmac.compute_hash("TestKey", token, "password") == expected


def test_uppercase_hash_is_accepted():
    header = mesh_hmac.build_header("ALICE", "password", "TestKey", nonce="n", at=AT)
    scheme, _, rest = header.partition(" ")
    token = mesh_hmac.parse_token(f"{scheme} {rest[:-64]}{rest[-64:].upper()}")
    assert mesh_hmac.hash_matches("TestKey", token, "password")


def test_token_without_scheme_is_accepted():
    header = mesh_hmac.build_header("ALICE", "password", "TestKey", nonce="n", at=AT)
    assert mesh_hmac.parse_token(header.removeprefix("NHSMESH ")).mailbox_id == "ALICE"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "NHSMESH ",
        "NHSMESH ALICE:n:0:202603011030",
        "NHSMESH ALICE:n:0:202603011030:h:extra",
        "NHSMESH ALICE:n:x1:202603011030:h",
        "NHSMESH AL ICE:n:0:202603011030:h",
        "NHSMESH :n:0:202603011030:h",
        "NHSMESH ALICE::0:202603011030:h",
        "NHSMESH ALICE:n:0:202603011030:",
    ],
)
def test_malformed_tokens_are_refused(header):
    with pytest.raises(AuthenticationFailed) as caught:
        mesh_hmac.parse_token(header)
    assert caught.value.description == "Error reading from Authorization header"


@pytest.mark.parametrize(
    ("offset", "inside"),
    [
        (timedelta(0), True),
        (timedelta(hours=2), True),
        (-timedelta(hours=2), True),
        (timedelta(hours=2, minutes=1), False),
        (-timedelta(hours=2, minutes=1), False),
    ],
)
def test_clock_window(offset, inside):
    token = mesh_hmac.parse_token(mesh_hmac.build_header("ALICE", "p", "k", nonce="n", at=AT))
    assert mesh_hmac.within_window(token, AT + offset, timedelta(hours=2)) is inside


@pytest.mark.parametrize(
    "stamp",
    [
        "20261301000",
        "202613010000",
        "202602300000",
        "202603012400",
        "202603011060",
        "abcdefghijkl",
        "2026030110301",
        "202603011030\n",
        "".join(chr(0xFF10 + int(digit)) for digit in "202603011030"),  # full-width digits
    ],
)
def test_unparseable_timestamps_are_outside_any_window(stamp):
    token = mesh_hmac.MeshToken("ALICE", "n", "0", stamp, "h")
    assert not mesh_hmac.within_window(token, AT, timedelta(days=365000))


def test_replay_key_changes_with_nonce_or_count():
    base = mesh_hmac.MeshToken("ALICE", "n", "0", "202603011030", "ab")
    keys = {
        mesh_hmac.replay_key(t)
        for t in (
            base,
            mesh_hmac.MeshToken("ALICE", "m", "0", "202603011030", "ab"),
            mesh_hmac.MeshToken("ALICE", "n", "1", "202603011030", "ab"),
        )
    }
    assert len(keys) == 3
    assert mesh_hmac.replay_key(base) == mesh_hmac.replay_key(
        mesh_hmac.MeshToken("ALICE", "n", "0", "202603011030", "AB")
    )


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no Authorization header"),
        ("  ", "the Authorization header is blank"),
        ("NHSMESH ", "nothing after the NHSMESH scheme"),
        ("Basic QUxJQ0U6cGFzc3dvcmQ=", "the scheme is 'Basic', not NHSMESH"),
        ("Bearer ALICE:n:0:202603011030:h", "the scheme is 'Bearer', not NHSMESH"),
        ("hunter2 ALICE:n:0:202603011030:h", "does not start with NHSMESH but with another word"),
        ("NHSMESH ALICE:n:0:202603011030", "4 colon-separated fields, expected 5"),
        ("NHSMESH ALICE:n:0:202603011030:h:extra", "6 colon-separated fields, expected 5"),
        ("NHSMESH :n:0:202603011030:h", "the mailbox id (field 1) is empty"),
        ("NHSMESH AL ICE:n:0:202603011030:h", "the mailbox id 'AL ICE' contains a space"),
        ("NHSMESH ALICE::0:202603011030:h", "the nonce (field 2) is empty"),
        (
            "NHSMESH ALICE:n:pass1:202603011030:h",
            "the nonce count (field 3) is not a whole number (5 characters",
        ),
        ("NHSMESH ALICE:n:0:202603011030:", "the HMAC (field 5) is empty"),
    ],
)
def test_a_malformed_token_says_which_part_is_wrong(header, reason):
    with pytest.raises(AuthenticationFailed) as caught:
        mesh_hmac.parse_token(header)
    assert caught.value.description == "Error reading from Authorization header"
    assert caught.value.reason.startswith("malformed header: ")
    assert reason in caught.value.reason
    for never in ("hunter2", "pass1", "QUxJQ0U6cGFzc3dvcmQ="):
        assert never not in caught.value.reason


@pytest.mark.parametrize(
    ("stamp", "problem"),
    [
        ("202603011030", None),
        ("202613011030", "the timestamp (field 4) '202613011030' is not a valid UTC time"),
        ("soon", "is not 12 digits yyyyMMddHHmm (4 characters: letters)"),
        ("my-Passw0rd", "is not 12 digits yyyyMMddHHmm (11 characters: digits, letters, other characters)"),
    ],
)
def test_timestamp_problem_never_repeats_what_is_not_a_number(stamp, problem):
    token = mesh_hmac.MeshToken("ALICE", "n", "0", stamp, "h")
    found = mesh_hmac.timestamp_problem(token)
    assert (found is None) is (problem is None)
    if problem is not None:
        assert found is not None
        assert problem in found
    assert "Passw0rd" not in (found or "")
