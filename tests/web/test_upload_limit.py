"""MAILROOM_MAX_CONCURRENT_UPLOADS: bodies stored at once per process; the next one waits, unread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from mailroom.web.wire.outbox import SMALL_BODY

SIZE = SMALL_BODY + 1  # streamed to storage while it arrives, in an upload thread


@pytest.fixture
def limited(make_client: Callable[..., TestClient]) -> Any:
    """An app (its own database and payloads, the same mailboxes) storing one upload at a time."""
    return make_client(max_concurrent_uploads=1).app


def test_the_limit_sizes_the_upload_threads(limited) -> None:
    assert limited.state.upload_slots.total == 1


def test_an_upload_over_the_limit_waits_its_turn_and_then_succeeds(limited, headers) -> None:
    app = limited
    limiter = app.state.upload_slots
    release = anyio.Event()

    async def held_body() -> AsyncIterator[bytes]:
        yield b"a" * (SIZE - 1)
        await release.wait()  # the first upload keeps its thread until released
        yield b"a"

    async def body() -> AsyncIterator[bytes]:
        yield b"b" * SIZE

    async def post(content: Callable[[], AsyncIterator[bytes]], results: list[httpx.Response]) -> None:
        request_headers = headers(
            "ALICE", **{"mex-to": "BOB", "mex-workflowid": "W", "content-length": str(SIZE)}
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            results.append(
                await client.post("/messageexchange/ALICE/outbox", content=content(), headers=request_headers)
            )

    async def main() -> tuple[list[httpx.Response], list[httpx.Response], int]:
        first: list[httpx.Response] = []
        second: list[httpx.Response] = []
        async with anyio.create_task_group() as group:
            group.start_soon(post, held_body, first)
            with anyio.fail_after(10):
                while limiter.borrowed < 1:
                    await anyio.sleep(0.01)
            group.start_soon(post, body, second)
            with anyio.fail_after(10):
                while limiter.waiting < 1:
                    await anyio.sleep(0.01)
            waiting_while_held = limiter.waiting
            assert not second  # not answered while the only thread is taken
            release.set()
        return first, second, waiting_while_held

    first, second, waiting = anyio.run(main)
    assert waiting == 1
    assert [r.status_code for r in first + second] == [202, 202]
    assert limiter.borrowed == 0


def _post(app: Any, path: str, request_headers: dict[str, str], content: Any) -> Any:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            return await client.post(path, content=content, headers=request_headers)

    return go


def _send_headers(
    headers: Callable[..., dict[str, str]], sender: str, recipient: str, size: int
) -> dict[str, str]:
    return headers(sender, **{"mex-to": recipient, "mex-workflowid": "W", "content-length": str(size)})


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.01)


def test_one_mailbox_holds_at_most_its_share_and_another_goes_ahead(make_client, headers) -> None:
    """MAILROOM_MAX_UPLOADS_PER_MAILBOX: ALICE, at her share, waits; BOB's upload is stored."""
    app = make_client(max_concurrent_uploads=2, max_uploads_per_mailbox=1).app
    slots = app.state.upload_slots
    release = anyio.Event()

    async def held_body() -> AsyncIterator[bytes]:
        yield b"a" * (SIZE - 1)
        await release.wait()
        yield b"a"

    async def body() -> AsyncIterator[bytes]:
        yield b"b" * SIZE

    outbox = "/messageexchange/{}/outbox"
    results: dict[str, int] = {}
    ids: dict[str, str] = {}

    async def record(name: str, go: Callable[[], Any]) -> None:
        response = await go()
        results[name] = response.status_code
        ids[name] = response.json()["message_id"]

    async def main() -> None:
        async with anyio.create_task_group() as group:
            alice = _send_headers(headers, "ALICE", "BOB", SIZE)
            group.start_soon(record, "alice held", _post(app, outbox.format("ALICE"), alice, held_body()))
            await _until(lambda: slots.held_by("ALICE") == 1)
            alice = _send_headers(headers, "ALICE", "BOB", SIZE)
            group.start_soon(record, "alice waits", _post(app, outbox.format("ALICE"), alice, body()))
            await _until(lambda: slots.waiting == 1)
            bob = _send_headers(headers, "BOB", "ALICE", SIZE)
            with anyio.fail_after(10):  # before: ALICE's second upload had the other slot
                await record("bob", _post(app, outbox.format("BOB"), bob, body()))
            assert "alice waits" not in results
            release.set()

    anyio.run(main)
    assert results == {"alice held": 202, "alice waits": 202, "bob": 202}
    assert (slots.borrowed, slots.waiting) == (0, 0)
    client = TestClient(app)
    # the waiting upload's body, part of it heard while it waited, is stored whole
    stored = client.get(f"/messageexchange/BOB/inbox/{ids['alice waits']}", headers=headers("BOB"))
    assert stored.content == b"b" * SIZE


def test_a_small_chunk_needs_no_upload_slot(limited, headers) -> None:
    """A chunk that arrives whole and is kept in its row writes no file: it is stored while
    another mailbox holds the only upload slot (before, it waited for it)."""
    app = limited
    slots = app.state.upload_slots
    release = anyio.Event()

    async def held_body() -> AsyncIterator[bytes]:
        yield b"a" * (SIZE - 1)
        await release.wait()
        yield b"a"

    async def main() -> list[int]:
        statuses: list[int] = []

        async def held() -> None:
            alice = _send_headers(headers, "ALICE", "BOB", SIZE)
            statuses.append(
                (await _post(app, "/messageexchange/ALICE/outbox", alice, held_body())()).status_code
            )

        async with anyio.create_task_group() as group:
            group.start_soon(held)
            await _until(lambda: slots.borrowed == 1)
            first = headers("BOB", **{"mex-to": "ALICE", "mex-workflowid": "W", "mex-chunk-range": "1:2"})
            with anyio.fail_after(10):
                sent = await _post(app, "/messageexchange/BOB/outbox", first, b"chunk one")()
                message_id = sent.json()["message_id"]
                chunk = await _post(
                    app,
                    f"/messageexchange/BOB/outbox/{message_id}/2",
                    headers("BOB", **{"mex-chunk-range": "2:2"}),
                    b"12345",
                )()
            statuses += [sent.status_code, chunk.status_code]
            release.set()
        return statuses

    assert sorted(anyio.run(main)) == [202, 202, 202]
    assert slots.borrowed == 0


def _scope(path: str, request_headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in request_headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }


@pytest.mark.parametrize("sent_before_leaving", [0, 1000, SIZE], ids=["nothing", "some", "all"])
def test_a_waiting_upload_whose_client_goes_away_leaves_the_queue(
    limited, headers, sent_before_leaving
) -> None:
    """The waiter hears of its client's going away while it waits (whether none, some or all of
    its body had come), and leaves the queue then, not when its turn comes."""
    app = limited
    slots = app.state.upload_slots
    release = anyio.Event()

    async def held_body() -> AsyncIterator[bytes]:
        yield b"a" * (SIZE - 1)
        await release.wait()
        yield b"a"

    async def main() -> tuple[list[int], int, int]:
        gone = anyio.Event()
        statuses: list[int] = []
        messages: list[dict[str, Any]] = []
        if sent_before_leaving:
            more = sent_before_leaving < SIZE
            messages.append({"type": "http.request", "body": b"b" * sent_before_leaving, "more_body": more})

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        async def held() -> None:
            alice = _send_headers(headers, "ALICE", "BOB", SIZE)
            statuses.append(
                (await _post(app, "/messageexchange/ALICE/outbox", alice, held_body())()).status_code
            )

        async with anyio.create_task_group() as group:
            group.start_soon(held)
            await _until(lambda: slots.borrowed == 1)
            waiter = _send_headers(headers, "BOB", "ALICE", SIZE)
            group.start_soon(app, _scope("/messageexchange/BOB/outbox", waiter), receive, send)
            await _until(lambda: slots.waiting == 1)
            gone.set()
            await _until(lambda: slots.waiting == 0)
            still_held = slots.borrowed
            answered = list(statuses)
            release.set()
        return answered, still_held, slots.borrowed

    answered, still_held, after = anyio.run(main)
    assert answered == [400]  # the client-disconnected answer, while the first upload still runs
    assert (still_held, after) == (1, 0)
