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
    assert limited.state.upload_limiter.total_tokens == 1


def test_an_upload_over_the_limit_waits_its_turn_and_then_succeeds(limited, headers) -> None:
    app = limited
    limiter = app.state.upload_limiter
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
                while limiter.borrowed_tokens < 1:
                    await anyio.sleep(0.01)
            group.start_soon(post, body, second)
            with anyio.fail_after(10):
                while limiter.statistics().tasks_waiting < 1:
                    await anyio.sleep(0.01)
            waiting_while_held = limiter.statistics().tasks_waiting
            assert not second  # not answered while the only thread is taken
            release.set()
        return first, second, waiting_while_held

    first, second, waiting = anyio.run(main)
    assert waiting == 1
    assert [r.status_code for r in first + second] == [202, 202]
    assert limiter.borrowed_tokens == 0
