"""The JSON faces' pure parts: list parameters and their precedence, the access token in
``Authorization``, ``Range`` values, each face's error shape and status, record states."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailroom import errors
from mailroom.domain.envelopes import DeliveryInfo, DeliveryState, Face, ListQuery, MessageView
from mailroom.web.messaging.auth import token_of
from mailroom.web.messaging.errors import FieldErrors, d4science_body, headers_of, mft_body, status_of
from mailroom.web.messaging.files import disposition, parse_range
from mailroom.web.messaging.inputs import list_query, message_id
from mailroom.web.messaging.records import delivery_status, message_status


def test_list_defaults() -> None:
    assert list_query({}, inbox=True) == ListQuery(descending=True, limit=10, offset=0, fetch_all=False)
    assert list_query({}, inbox=False).fetch_all is True
    assert list_query({"fetchAll": "false"}, inbox=False).fetch_all is True  # inbox only


def test_general_values_parse() -> None:
    query = list_query(
        {"sortDir": "ASC", "pageLength": "100", "pageOffset": "7", "fetchAll": "true"}, inbox=True
    )
    assert (query.descending, query.limit, query.offset, query.fetch_all) == (False, 100, 7, True)


def test_primary_filter_beats_secondary_ones() -> None:
    query = list_query({"stationAS2Id": "ALICE", "partnerAS2Id": "BOB", "subject": "x"}, inbox=True)
    assert (query.station, query.partner, query.message_id, query.subject) == ("ALICE", None, None, None)


@pytest.mark.parametrize(
    ("params", "wanted"),
    [
        ({"partnerAS2Id": "BOB", "as2MessageId": "M", "subject": "s"}, ("BOB", None, None)),
        ({"as2MessageId": "<M>", "subject": "s"}, (None, "M", None)),
        ({"subject": "s"}, (None, None, "s")),
        ({"partnerIdentifier": "BOB"}, ("BOB", None, None)),
        ({"identifier": "M"}, (None, "M", None)),
    ],
)
def test_one_secondary_filter_first_in_order(params: dict[str, str], wanted: tuple[object, ...]) -> None:
    query = list_query(params, inbox=False)
    assert (query.partner, query.message_id, query.subject) == wanted


def test_new_names_of_the_primary_filter() -> None:
    assert list_query({"stationIdentifier": "ALICE"}, inbox=True).station == "ALICE"


@pytest.mark.parametrize(
    "params",
    [
        {"sortDir": "sideways"},
        {"pageLength": "0"},
        {"pageLength": "101"},
        {"pageLength": "1.5"},
        {"pageOffset": "-1"},
        {"pageOffset": "9" * 30},
        {"fetchAll": "perhaps"},
        {"subject": "x" * 301},
        {"subject": "a\x00b"},
    ],
)
def test_bad_list_values_are_validation_errors(params: dict[str, str]) -> None:
    with pytest.raises(errors.ValidationFailed) as refused:
        list_query(params, inbox=True)
    assert refused.value.name == next(iter(params))
    assert status_of(refused.value) == 400


def test_ids_lose_their_angle_brackets() -> None:
    assert message_id(" <20200101000000000000_ABCDEF> ") == "20200101000000000000_ABCDEF"
    with pytest.raises(errors.NotFound):
        message_id("<>")


@pytest.mark.parametrize(
    ("header", "token"),
    [("abc.def", "abc.def"), ("Bearer abc.def", "abc.def"), ("bearer  abc.def ", "abc.def")],
)
def test_token_bare_or_bearer(header: str, token: str) -> None:
    assert token_of(header) == token


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic a b", "x" * 5000])
def test_no_token(header: str | None) -> None:
    with pytest.raises(errors.AuthenticationFailed):
        token_of(header)


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, None)),
        ("bytes=-5", (None, 5)),
        ("bytes=0-1,4-5", None),  # several ranges: the whole file
        ("items=0-9", None),
        ("bytes=9-2", None),
        ("bytes=-", None),
    ],
)
def test_range_values(header: str | None, wanted: object) -> None:
    assert parse_range(header) == wanted


def test_disposition_never_carries_the_raw_name() -> None:
    value = disposition('a"b\r\n.txt')
    assert "\r" not in value
    assert "\n" not in value
    assert 'filename="a_b__.txt"' in value


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.AuthenticationFailed(), 401),
        (errors.PermissionDenied(), 403),
        (errors.LinkRefused(), 403),
        (errors.Forbidden(), 403),
        (errors.NotFound(), 404),
        (errors.ValidationFailed("query", "x", "bad"), 400),
        (errors.PayloadTooLarge(), 413),
        (errors.Conflict(), 409),
        (errors.RangeNotSatisfiable(10), 416),
        (errors.TooManyAttempts(30), 429),
        (errors.SendRejected("no"), 400),
    ],
)
def test_statuses(error: errors.MailroomError, status: int) -> None:
    assert status_of(error) == status


def test_headers_of_a_range_and_a_lock_out() -> None:
    assert headers_of(errors.RangeNotSatisfiable(10)) == {"content-range": "bytes */10"}
    assert headers_of(errors.TooManyAttempts(30)) == {"retry-after": "30"}


def test_the_two_shapes() -> None:
    refused = FieldErrors([("body", "subject", "too short"), ("body", "body", "missing")])
    assert mft_body(refused) == {
        "message": "too short",
        "errors": [
            {"field": "subject", "location": "body", "message": "too short"},
            {"field": "body", "location": "body", "message": "missing"},
        ],
    }
    assert mft_body(errors.NotFound("No such message")) == {"message": "No such message"}
    assert d4science_body(errors.NotFound("No such message")) == {
        "success": False,
        "message": "No such message",
        "result": None,
    }
    assert d4science_body(refused)["message"] == "subject: too short; body: missing"


def _view(*states: DeliveryState) -> MessageView:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    deliveries = [DeliveryInfo(f"M{n}", f"R{n}", s, "", now, None) for n, s in enumerate(states)]
    return MessageView("M0", False, "ALICE", "S", "", now, "", "", Face.MFT, [], deliveries)


@pytest.mark.parametrize(
    ("states", "status", "delivery"),
    [
        ((DeliveryState.SENT,), "sent", "No Status"),
        ((DeliveryState.DELIVERED, DeliveryState.ACKNOWLEDGED), "sent", "Delivered"),
        ((DeliveryState.QUEUED, DeliveryState.SENT), "queued", "No Status"),
        ((DeliveryState.FAILED, DeliveryState.SENT), "sent", "Not Delivered"),
        ((DeliveryState.FAILED,), "failed", "Not Delivered"),
    ],
)
def test_record_states(states: tuple[DeliveryState, ...], status: str, delivery: str) -> None:
    view = _view(*states)
    assert message_status(view) == status
    assert delivery_status(view) == delivery
