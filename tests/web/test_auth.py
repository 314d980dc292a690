"""Authentication (spec §2), the handshake (§5.2) and Accept negotiation (§3)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from mailroom.auth.mesh_hmac import build_header

from ._mesh import V1_ACCEPT, V2_TYPE, assert_error, assert_validation

INBOX = "/messageexchange/ALICE/inbox"
READ_ERROR = "Error reading from Authorization header"
MISMATCH = "Mailbox id does not match token"
INVALID = "Invalid Authentication Token"
REPLAYED = "Error Duplicated Authentication Token"
STALE = "Authentication token timestamp is outside the allowed window"
HANDSHAKE_HEADERS = {"mex-clientversion": "mesh_client==5.0.2", "mex-osname": "Linux", "mex-osversion": "6.1"}


def accept(v2: bool) -> dict[str, str]:
    return {"accept": V2_TYPE} if v2 else {}


def token(mailbox: str, clock, *, password: str = "password", key: str = "TestKey", **kw) -> str:
    kw.setdefault("nonce", str(uuid.uuid4()))
    kw.setdefault("at", clock.now())
    return build_header(mailbox, password, key, **kw)


# -- failures: every one is a 403 with the MESH error body ---------------------------------------


def test_missing_header_is_403(client, v2):
    response = client.get(INBOX, headers=accept(v2))
    assert_error(response, 403, v2, "", "", READ_ERROR)


MALFORMED = [
    "",
    "   ",
    "NHSMESH ",
    "NHSMESH ALICE:nonce:1:202601011200",  # four fields
    "NHSMESH ALICE:nonce:1:202601011200:hash:extra",  # six fields
    "NHSMESH ALICE:nonce:x1:202601011200:hash",  # nonce count not digits
    "NHSMESH ALICE::1:202601011200:hash",  # empty nonce
    "Basic QUxJQ0U6cGFzc3dvcmQ=",  # another scheme
    "Bearer ALICE:nonce:1:202601011200:hash",  # another scheme: a space in the mailbox id
]


def test_malformed_header_is_403(client, v2):
    for value in MALFORMED:
        response = client.get(INBOX, headers={"authorization": value, **accept(v2)})
        assert_error(response, 403, v2, "", "", READ_ERROR)


def test_token_for_another_mailbox_is_403(client, clock, v2):
    response = client.get(INBOX, headers={"authorization": token("BOB", clock), **accept(v2)})
    assert_error(response, 403, v2, "", "", MISMATCH)


def test_token_mailbox_is_not_upper_cased(client, clock, v2):
    response = client.get(INBOX, headers={"authorization": token("alice", clock), **accept(v2)})
    assert_error(response, 403, v2, "", "", MISMATCH)


def test_path_mailbox_is_upper_cased(client, clock):
    response = client.get("/messageexchange/alice/inbox", headers={"authorization": token("ALICE", clock)})
    assert response.status_code == 200
    assert response.json() == {"messages": []}


def test_unknown_mailbox_is_403_epl_151(client, clock, v2):
    response = client.get(
        "/messageexchange/NOBODY/inbox", headers={"authorization": token("NOBODY", clock), **accept(v2)}
    )
    assert_error(response, 403, v2, "SEND", "EPL-151", "No mailbox matched")


def test_bad_hash_is_403(client, clock, v2):
    for wrong in [{"password": "wrong"}, {"key": "OtherKey"}]:
        response = client.get(INBOX, headers={"authorization": token("ALICE", clock, **wrong), **accept(v2)})
        assert_error(response, 403, v2, "", "", INVALID)


def test_inactive_mailbox_is_403(client, clock, container, v2):
    container.mailboxes.set_active("BARRY", False)
    response = client.get(
        "/messageexchange/BARRY/inbox", headers={"authorization": token("BARRY", clock), **accept(v2)}
    )
    assert_error(response, 403, v2, "", "", "Request Received from Inactive Mailbox")


def test_auth_runs_before_header_validation(client, v2):
    response = client.post("/messageexchange/ALICE/outbox", content=b"x", headers=accept(v2))
    assert_error(response, 403, v2, "", "", READ_ERROR)


# -- accepted variants --------------------------------------------------------------------------


def test_scheme_less_token_is_accepted(client, clock):
    value = token("ALICE", clock).removeprefix("NHSMESH ")
    assert client.get(INBOX, headers={"authorization": value}).status_code == 200


def test_lower_case_scheme_and_upper_case_hash_are_accepted(client, clock):
    scheme, rest = token("ALICE", clock).split(" ", 1)
    fields = rest.split(":")
    fields[-1] = fields[-1].upper()
    value = f"{scheme.lower()} {':'.join(fields)}"
    assert client.get(INBOX, headers={"authorization": value}).status_code == 200


# -- single use ---------------------------------------------------------------------------------


def test_replayed_token_is_403(client, clock, v2):
    value = token("ALICE", clock)
    assert client.get(INBOX, headers={"authorization": value}).status_code == 200
    response = client.get(INBOX, headers={"authorization": value, **accept(v2)})
    assert_error(response, 403, v2, "", "", REPLAYED)


def test_new_nonce_count_makes_a_new_token(client, clock):
    for count in range(3):
        value = token("ALICE", clock, nonce="fixed-nonce", nonce_count=count)
        assert client.get(INBOX, headers={"authorization": value}).status_code == 200


def test_replay_check_can_be_switched_off(make_client, clock):
    relaxed = make_client(auth_single_use_tokens=False)
    value = token("ALICE", clock)
    for _ in range(3):
        assert relaxed.get(INBOX, headers={"authorization": value}).status_code == 200


# -- clock skew ---------------------------------------------------------------------------------


def test_timestamp_within_two_hours_is_accepted(client, clock):
    for offset in [timedelta(hours=-2), timedelta(0), timedelta(hours=2)]:
        value = token("ALICE", clock, at=clock.now() + offset)
        assert client.get(INBOX, headers={"authorization": value}).status_code == 200, offset


def test_timestamp_outside_two_hours_is_403(client, clock, v2):
    for offset in [timedelta(hours=-2, minutes=-1), timedelta(hours=2, minutes=1)]:
        value = token("ALICE", clock, at=clock.now() + offset)
        response = client.get(INBOX, headers={"authorization": value, **accept(v2)})
        assert_error(response, 403, v2, "", "", STALE)


def test_unparseable_timestamp_is_403(client, clock):
    nonce = str(uuid.uuid4())
    good = token("ALICE", clock, nonce=nonce)
    mailbox, nonce, count, _stamp, digest = good.removeprefix("NHSMESH ").split(":")
    response = client.get(
        INBOX, headers={"authorization": f"NHSMESH {mailbox}:{nonce}:{count}:soon:{digest}"}
    )
    assert response.status_code == 403


def test_clock_check_can_be_switched_off(make_client, clock):
    relaxed = make_client(auth_check_clock=False)
    value = token("ALICE", clock, at=clock.now() - timedelta(days=3))
    assert relaxed.get(INBOX, headers={"authorization": value}).status_code == 200


# -- handshake ----------------------------------------------------------------------------------


def test_handshake(client, headers, v2):
    for method in ["GET", "POST"]:
        response = client.request(
            method, "/messageexchange/ALICE", headers={**headers("ALICE", v2=v2), **HANDSHAKE_HEADERS}
        )
        assert response.status_code == 200
        if v2:
            assert response.content == b""
        else:
            assert response.json() == {"mailboxId": "ALICE"}


def test_handshake_requires_client_headers(client, headers):
    for missing in HANDSHAKE_HEADERS:
        sent = {name: value for name, value in HANDSHAKE_HEADERS.items() if name != missing}
        response = client.post("/messageexchange/ALICE", headers={**headers("ALICE"), **sent})
        assert_validation(response, {"type": "missing", "loc": ["header", missing], "msg": "Field required"})


def test_handshake_needs_auth(client, v2):
    response = client.post("/messageexchange/ALICE", headers={**HANDSHAKE_HEADERS, **accept(v2)})
    assert_error(response, 403, v2, "", "", READ_ERROR)


def test_update_is_an_authenticated_no_op(client, headers):
    response = client.post("/messageexchange/ALICE/update", headers=headers("ALICE"))
    assert response.status_code == 200
    assert response.content == b""
    assert client.post("/messageexchange/ALICE/update").status_code == 403


# -- Accept negotiation -------------------------------------------------------------------------

V1_COUNT = {"count": 0, "internalID": "ALICE", "allResultsIncluded": True}
V2_COUNT = {"count": 0}


ACCEPT_CASES = [
    ("*/*", V1_COUNT),
    ("application/json", V1_COUNT),
    (V1_ACCEPT, V1_COUNT),
    (V2_TYPE, V2_COUNT),
    ("application/vnd.mesh.v2+json, */*", V2_COUNT),
    ("application/json;q=0.9, application/vnd.mesh.v2+json", V2_COUNT),
    ("application/vnd.mesh.v3+json", V2_COUNT),
    ("APPLICATION/VND.MESH.V2+JSON", V2_COUNT),
]


def test_accept_header_selects_the_version(client, auth):
    for value, expected in ACCEPT_CASES:
        response = client.get(
            "/messageexchange/ALICE/count", headers={"authorization": auth("ALICE"), "accept": value}
        )
        assert response.status_code == 200
        assert response.json() == expected, value


def test_no_accept_header_means_v1(client, auth):
    request = client.build_request(
        "GET", "/messageexchange/ALICE/count", headers={"authorization": auth("ALICE")}
    )
    del request.headers["accept"]
    response = client.send(request)
    assert response.json() == V1_COUNT
