"""A server killed (SIGKILL) at any moment restarts with every accepted message intact.

What is checked after each restart, from the outside (HTTP) and on disk:
- every message that got a 202 is listed and every chunk downloads byte-identical;
- a chunked message with a chunk missing is not listed and cannot be downloaded (410);
- every chunk row points at a whole payload file (size and sha256 match) and every payload
  file under ``objects/`` belongs to a row: partial uploads stay in ``tmp/``, never served;
- re-sending a chunk is harmless, and the interrupted message can be completed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from tests.e2e.conftest import StartServer
from tests.e2e.harness import (
    MIB,
    Mailroom,
    Payload,
    assert_store_consistent,
    blocking_body,
    download_message,
    expected,
    files_under,
    inbox,
    send,
    send_chunk,
    wait_for,
)

pytestmark = pytest.mark.slow

Accepted = dict[str, list[Payload]]


def assert_all_intact(server: Mailroom, accepted: Accepted, *, in_flight: int = 0) -> None:
    bob = server.client("BOB")
    listed = inbox(bob)
    assert set(accepted) <= set(listed), f"lost after restart: {sorted(set(accepted) - set(listed))}"
    for message_id, parts in accepted.items():
        assert download_message(bob, message_id) == expected(parts), message_id
    for message_id in set(listed) - set(accepted):  # accepted, but the 202 was lost in the crash
        assert all(status in (200, 206) for status, _, _ in download_message(bob, message_id))
    assert_store_consistent(server.data_dir, unrecorded_allowed=in_flight)


def in_background(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[object]]:
    """Run ``call`` in a thread; the list receives its response or transport error."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except httpx.TransportError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_kill_mid_transfer_then_restart(start_server: StartServer) -> None:
    server = start_server()
    alice = server.client("ALICE")
    small, large = Payload(10_000, seed=1), Payload(3 * MIB, seed=2)
    accepted: Accepted = {send(alice, small.bytes()): [small], send(alice, large.pieces()): [large]}
    done = [Payload(2 * MIB, seed=3), Payload(MIB + 17, seed=4)]
    done_id = send(alice, done[0].pieces(), chunks="1:2")
    assert send_chunk(alice, done_id, 2, 2, done[1].pieces()).status_code == 202
    accepted[done_id] = done
    parts = [Payload(2 * MIB, seed=10 + n) for n in range(3)]
    pending = send(alice, parts[0].pieces(), chunks="1:3")
    assert send_chunk(alice, pending, 2, 3, parts[1].pieces()).status_code == 202

    # chunk 3 of `pending` and a brand-new message, both stuck halfway through their bodies
    release = threading.Event()
    stuck = [
        in_background(
            lambda: send_chunk(
                server.client("ALICE"), pending, 3, 3, blocking_body(parts[2].pieces(), release)
            )
        ),
        in_background(
            lambda: server.client("ALICE").post(
                "/messageexchange/ALICE/outbox",
                content=blocking_body(Payload(4 * MIB, seed=30).pieces(), release),
                headers={"mex-to": "BOB", "mex-workflowid": "WF"},
            )
        ),
    ]
    wait_for(lambda: len([p for p in files_under(server.uploads) if p.stat().st_size >= MIB]) == 2,
             what="two uploads in progress")  # fmt: skip
    server.kill()
    release.set()
    for thread, outcome in stuck:
        thread.join(timeout=30)
        assert len(outcome) == 1
        assert isinstance(outcome[0], httpx.TransportError), outcome
    partial = files_under(server.uploads)
    assert len(partial) == 2

    server.start()
    assert_all_intact(server, accepted)
    assert inbox(server.client("BOB")) == list(accepted)  # oldest first; `pending` not listed
    assert download_message(server.client("BOB"), pending) == [(410, "", 0)]
    assert files_under(server.uploads) == partial  # left for the sweep, never reachable

    # re-sending a stored chunk is harmless; the last chunk completes the message
    alice = server.client("ALICE")
    assert send_chunk(alice, pending, 2, 3, parts[1].pieces()).status_code == 202
    assert pending not in inbox(server.client("BOB"))
    assert send_chunk(alice, pending, 3, 3, parts[2].pieces()).status_code == 202
    accepted[pending] = parts
    assert send_chunk(alice, pending, 3, 3, parts[2].pieces()).status_code == 423
    assert_all_intact(server, accepted)
    assert inbox(server.client("BOB")) == list(accepted)


def sender(server: Mailroom, accepted: Accepted, stop: threading.Event, seed: int) -> None:
    """Sends single and 2-chunk messages until the server dies; records each completed 202."""
    client = server.client("ALICE", timeout=10)
    rng = random.Random(seed)
    try:
        while not stop.is_set():
            sizes = [rng.randint(1, MIB // 2) for _ in range(rng.randint(1, 2))]
            parts = [Payload(size, seed=rng.getrandbits(32), piece=64 * 1024) for size in sizes]
            message_id = send(client, parts[0].pieces(), chunks=f"1:{len(parts)}")
            if len(parts) == 2:
                assert send_chunk(client, message_id, 2, 2, parts[1].pieces()).status_code == 202
            accepted[message_id] = parts
    except httpx.TransportError:
        return
    except RuntimeError:
        if not client.is_closed:  # kill() closes the clients: one may be between two requests
            raise


def test_killed_at_random_moments_loses_nothing_accepted(start_server: StartServer) -> None:
    server = start_server()
    accepted: Accepted = {}
    rng = random.Random(2024)
    in_flight = 0  # uploads possibly cut between "file in place" and "row committed"
    for round_no in range(3):
        # mid-traffic: two senders busy with bodies, commits and responses
        stop = threading.Event()
        threads = [
            threading.Thread(target=sender, args=(server, accepted, stop, round_no * 10 + n), daemon=True)
            for n in range(2)
        ]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0.2, 0.5))
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
            assert not thread.is_alive()
        server.start()
        in_flight += len(threads)
        assert_all_intact(server, accepted, in_flight=in_flight)

        # between requests: killed the moment the 202 arrives
        part = Payload(rng.randint(1, MIB), seed=round_no)
        accepted[send(server.client("ALICE"), part.pieces())] = [part]
        server.kill()
        server.start()
        assert_all_intact(server, accepted, in_flight=in_flight)
    assert len(accepted) >= 6
