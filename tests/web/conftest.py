"""Helpers for the wire-API conformance tests: sending messages and apps with other settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mailroom.clock import FixedClock
from mailroom.container import Container
from mailroom.settings import Settings
from mailroom.web.app import create_app

from ._mesh import gz

HeaderFactory = Callable[..., dict[str, str]]
SendFactory = Callable[..., str]


@pytest.fixture(params=[False, True], ids=["v1", "v2"])
def v2(request: pytest.FixtureRequest) -> bool:
    """Parametrises a test over MESH API v1 and v2 (chosen by the ``Accept`` header)."""
    return bool(request.param)


@pytest.fixture
def send(client: TestClient, headers: HeaderFactory) -> SendFactory:
    """``send("ALICE", "BOB", b"data", mex_workflowid="WF")`` → the new message id (asserts 202)."""

    def make(sender: str = "ALICE", recipient: str = "BOB", body: bytes = b"hello", **extra: str) -> str:
        extra.setdefault("mex_workflowid", "WF1")
        response = client.post(
            f"/messageexchange/{sender}/outbox",
            content=body,
            headers=headers(sender, mex_to=recipient, **extra),
        )
        assert response.status_code == 202, response.text
        return str(response.json()["message_id"])

    return make


@pytest.fixture
def send_chunked(client: TestClient, headers: HeaderFactory) -> Callable[..., str]:
    """Sends every chunk in order (gzipping each one when ``gzipped``) → the message id."""

    def make(
        chunks: list[bytes],
        sender: str = "ALICE",
        recipient: str = "BOB",
        *,
        gzipped: bool = False,
        **extra: str,
    ) -> str:
        extra.setdefault("mex_workflowid", "WF1")
        total = len(chunks)
        encoding = {"content_encoding": "gzip"} if gzipped else {}
        first = client.post(
            f"/messageexchange/{sender}/outbox",
            content=gz(chunks[0]) if gzipped else chunks[0],
            headers=headers(sender, mex_to=recipient, mex_chunk_range=f"1:{total}", **encoding, **extra),
        )
        assert first.status_code == 202, first.text
        message_id = str(first.json()["message_id"])
        for number, chunk in enumerate(chunks[1:], start=2):
            response = client.post(
                f"/messageexchange/{sender}/outbox/{message_id}/{number}",
                content=gz(chunk) if gzipped else chunk,
                headers=headers(sender, mex_chunk_range=f"{number}:{total}", **encoding),
            )
            assert response.status_code == 202, response.text
        return message_id

    return make


@pytest.fixture
def make_client(
    settings: Settings, container: Container, fresh_container: Callable[[Settings], Container], tmp_path: Path
) -> Iterator[Callable[..., TestClient]]:
    """``make_client(download_after_ack="allow")`` → a client of a second app built with
    ``settings.replace(...)``, its own database and payloads, the same mailboxes and clock."""
    opened: list[tuple[Any, Container]] = []

    def make(**changes: Any) -> TestClient:
        custom = settings.replace(data_dir=tmp_path / f"alt{len(opened)}", **changes)
        built = fresh_container(custom)
        for mailbox in container.mailboxes.all():
            built.mailboxes.add(mailbox, replace=True)  # on PostgreSQL the database is shared
        test_client = TestClient(create_app(custom, built))
        test_client.__enter__()
        opened.append((test_client, built))
        return test_client

    yield make
    for test_client, built in opened:
        test_client.__exit__(None, None, None)
        built.close()


@pytest.fixture
def send_many(send, clock: FixedClock) -> Callable[..., list[str]]:
    """``send_many(n)`` → ids of n messages ALICE → BOB, one second apart (oldest first)."""

    def make(count: int, **extra: str) -> list[str]:
        ids = []
        for _ in range(count):
            ids.append(send(**extra))
            clock.advance(timedelta(seconds=1))
        return ids

    return make
