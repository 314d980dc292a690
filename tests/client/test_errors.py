"""Typed errors carrying MESH's code and description, against both servers."""

from __future__ import annotations

import pytest
from tests.support.fault_proxy import FaultProxy

from mailroom.client import (
    AuthenticationError,
    MeshApiError,
    MessageGoneError,
    MessageNotFoundError,
    ServerError,
    UnknownRecipientError,
)

from .conftest import Target


def test_bad_password_is_an_authentication_error(server: Target) -> None:
    with server.client("ALICE", password="wrong") as impostor, pytest.raises(AuthenticationError) as caught:
        impostor.check_inbox()
    assert caught.value.status_code == 403
    assert caught.value.description


def test_unknown_recipient(server: Target) -> None:
    with server.client("ALICE") as alice, pytest.raises(UnknownRecipientError) as caught:
        alice.send_bytes("NOBODY", b"x", "WF")
    error = caught.value
    assert (error.status_code, error.event, error.code) == (417, "SEND", "12")
    assert "Unregistered" in error.description


def test_unknown_message(server: Target, tmp_path) -> None:
    with server.client("BOB") as bob, pytest.raises(MessageNotFoundError) as caught:
        bob.download_message("20200101000000000000_ABCDEF", tmp_path)
    assert caught.value.status_code == 404
    assert caught.value.code == "20"


def test_message_gone(server: Target, tmp_path) -> None:
    with server.client("ALICE") as alice, server.client("BOB") as bob:
        message_id = alice.send_bytes("BOB", b"x", "WF").message_id
        server.set_status(message_id, "undeliverable")
        with pytest.raises(MessageGoneError) as caught:
            bob.download_message(message_id, tmp_path)
    assert caught.value.status_code == 410


def test_server_error_after_retries(server: Target, proxy: FaultProxy) -> None:
    proxy.add("GET", r".*/inbox", "status", status=500, times=None)
    with server.client("BOB", url=proxy.url) as bob, pytest.raises(ServerError) as caught:
        bob.check_inbox()
    assert caught.value.status_code == 500
    assert caught.value.description == "injected"
    assert len(proxy.requests("GET")) == 4, "tried as often as the retry policy allows"
    assert isinstance(caught.value, MeshApiError)
