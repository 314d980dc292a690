"""Kill Mailroom with SIGKILL at random moments of real traffic, restart it, check nothing is lost.

    .venv/bin/python -m bench.faults --rounds 100          # many rounds, on demand
    .venv/bin/python -m bench.faults --rounds 3 --seed 7   # what CI runs (tests/e2e/test_faults.py)
    .venv/bin/python -m bench.faults --workers 2           # against `mailroom serve --workers 2`

Each round runs four kinds of client at once against a real ``mailroom serve`` process: single
sends, chunked uploads (2-3 chunks), downloads with sha256 checks, and acknowledgements. At a
random moment the server's process group gets SIGKILL (with ``--workers``, the supervisor and
every worker at once, as a power cut would); the clients see transport errors. The
server is started again on the same data directory and checked from the outside:

- every message that got a 202 (and was not acknowledged) is listed exactly once and every
  chunk downloads byte-identical;
- every message whose acknowledgement got a 200 is gone (not listed, download gives 410);
- an acknowledgement cut off by the kill left the message either still listed or gone;
- every listed message is complete: each chunk downloads whole and matches a chunk some client
  sent (a message whose 202 was lost in the crash may be listed, but never a partial one);
- no id is listed twice, and every chunk row points at a whole payload file on disk.

At the end every listed message is downloaded and acknowledged once, and every accepted message
must have been delivered exactly once over the whole run.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.e2e.harness import (
    MIB,
    WORKFLOW,
    Mailroom,
    Payload,
    assert_store_consistent,
    download_message,
    expected,
    inbox,
    make_data_dir,
    start_mailroom,
)

GONE = (410, "", 0)


@dataclass
class Ledger:
    """What the clients know for sure, and what they cannot know (the crash ate the answer)."""

    accepted: dict[str, list[Payload]] = field(default_factory=dict)  # 202 received
    acked: set[str] = field(default_factory=set)  # ack answered 200
    ack_unknown: set[str] = field(default_factory=set)  # ack sent, no answer
    delivered: Counter[str] = field(default_factory=Counter)  # acked after a full download
    sent_chunks: set[tuple[str, int]] = field(default_factory=set)  # (sha256, size) of every chunk sent
    interrupted: Counter[str] = field(default_factory=Counter)  # operations cut by a kill, by kind
    completed: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # anything but a transport error
    lock: threading.Lock = field(default_factory=threading.Lock)

    def waiting(self) -> list[str]:
        with self.lock:
            return [m for m in self.accepted if m not in self.acked and m not in self.ack_unknown]


class Workload:
    """Client threads doing one kind of operation each until told to stop or the server dies."""

    def __init__(self, server: Mailroom, ledger: Ledger, rng: random.Random) -> None:
        self.server = server
        self.ledger = ledger
        self.rng = rng
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        kinds: list[tuple[str, Callable[[httpx.Client, random.Random], None]]] = [
            ("send", self._send),
            ("send", self._send),
            ("chunked upload", self._chunked),
            ("download", self._download),
            ("acknowledge", self._acknowledge),
        ]
        for n, (kind, step) in enumerate(kinds):
            client = self.server.client("BOB" if kind in ("download", "acknowledge") else "ALICE", timeout=20)
            rng = random.Random(self.rng.getrandbits(32) + n)
            thread = threading.Thread(target=self._loop, args=(kind, step, client, rng), daemon=True)
            self.threads.append(thread)
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), "a client thread hung after the kill"

    def _loop(
        self,
        kind: str,
        step: Callable[[httpx.Client, random.Random], None],
        client: httpx.Client,
        rng: random.Random,
    ) -> None:
        while not self.stop.is_set():
            try:
                step(client, rng)
            except httpx.TransportError:
                with self.ledger.lock:
                    self.ledger.interrupted[kind] += 1
                return
            except Exception as exc:
                closed_by_kill = isinstance(exc, RuntimeError) and client.is_closed  # between requests
                with self.ledger.lock:
                    if closed_by_kill:
                        self.ledger.interrupted[kind] += 1
                    else:
                        self.ledger.failures.append(f"{kind}: {exc!r}"[:500])
                return
            with self.ledger.lock:
                self.ledger.completed[kind] += 1

    def _payload(self, rng: random.Random, low: int, high: int) -> Payload:
        part = Payload(rng.randint(low, high), seed=rng.getrandbits(32), piece=64 * 1024)
        with self.ledger.lock:
            self.ledger.sent_chunks.add((part.sha256, part.size))
        return part

    def _post(self, client: httpx.Client, url: str, part: Payload, headers: dict[str, str]) -> httpx.Response:
        response = client.post(url, content=part.pieces(), headers=headers)
        assert response.status_code == 202, response.text
        return response

    def _send(self, client: httpx.Client, rng: random.Random) -> None:
        part = self._payload(rng, 1, 256 * 1024)
        headers = {"mex-to": "BOB", "mex-workflowid": WORKFLOW}
        response = self._post(client, "/messageexchange/ALICE/outbox", part, headers)
        with self.ledger.lock:
            self.ledger.accepted[response.json()["message_id"]] = [part]

    def _chunked(self, client: httpx.Client, rng: random.Random) -> None:
        # up to 3 MiB: those over 1 MiB stream to storage as they arrive (web/direct_body.py)
        parts = [self._payload(rng, 64 * 1024, 3 * MIB) for _ in range(rng.randint(2, 3))]
        total = len(parts)
        headers = {"mex-to": "BOB", "mex-workflowid": WORKFLOW, "mex-chunk-range": f"1:{total}"}
        message_id = self._post(client, "/messageexchange/ALICE/outbox", parts[0], headers).json()[
            "message_id"
        ]
        for number, part in enumerate(parts[1:], start=2):
            url = f"/messageexchange/ALICE/outbox/{message_id}/{number}"
            self._post(client, url, part, {"mex-chunk-range": f"{number}:{total}"})
        with self.ledger.lock:
            self.ledger.accepted[message_id] = parts

    def _download(self, client: httpx.Client, rng: random.Random) -> None:
        waiting = self.ledger.waiting()
        if not waiting:
            time.sleep(0.01)
            return
        message_id = rng.choice(waiting)
        got = download_message(client, message_id)
        with self.ledger.lock:
            gone = message_id in self.ledger.acked or message_id in self.ledger.ack_unknown
        want = expected(self.ledger.accepted[message_id])
        if got == want:
            return
        # acknowledged by the other thread meanwhile: chunks read before the ack are whole
        if not (gone and all(g in (w, GONE) for g, w in zip(got, want, strict=False)) and GONE in got):
            raise AssertionError(f"download of {message_id} gave {got}")

    def _acknowledge(self, client: httpx.Client, rng: random.Random) -> None:
        waiting = self.ledger.waiting()
        if not waiting:
            time.sleep(0.01)
            return
        message_id = rng.choice(waiting)
        with self.ledger.lock:
            self.ledger.ack_unknown.add(message_id)
        response = client.put(f"/messageexchange/BOB/inbox/{message_id}/status/acknowledged")
        assert response.status_code == 200, response.text
        with self.ledger.lock:
            self.ledger.ack_unknown.discard(message_id)
            self.ledger.acked.add(message_id)
            self.ledger.delivered[message_id] += 1


def check_after_restart(server: Mailroom, ledger: Ledger, in_flight: int) -> dict[str, int]:
    """Everything the module docstring promises, checked from the outside and on disk."""
    bob = server.client("BOB")
    listed = inbox(bob)
    assert len(listed) == len(set(listed)), "a message is listed twice"
    listed_set = set(listed)
    for message_id, parts in ledger.accepted.items():
        if message_id in ledger.acked:
            assert message_id not in listed_set, f"acknowledged {message_id} listed again"
            assert download_message(bob, message_id) == [GONE]
        elif message_id in ledger.ack_unknown:
            got = download_message(bob, message_id)
            assert got in (expected(parts), [GONE]), (message_id, got)
            assert (message_id in listed_set) == (got != [GONE])
        else:
            assert message_id in listed_set, f"accepted {message_id} lost"
            assert download_message(bob, message_id) == expected(parts), message_id
    unknown = listed_set - set(ledger.accepted)
    for message_id in unknown:  # its 202 was lost in the crash: complete, and made of sent chunks
        for status, digest, size in download_message(bob, message_id):
            assert status in (200, 206), (message_id, status)
            assert (digest, size) in ledger.sent_chunks, f"{message_id} holds bytes nobody sent"
    assert_store_consistent(server.data_dir, unrecorded_allowed=in_flight)
    return {"listed": len(listed), "lost_202_but_complete": len(unknown)}


def drain(server: Mailroom, ledger: Ledger) -> None:
    """Download and acknowledge everything still listed; then each accepted id was delivered once."""
    bob = server.client("BOB")
    for message_id in inbox(bob):
        got = download_message(bob, message_id)
        if message_id in ledger.accepted:
            assert got == expected(ledger.accepted[message_id]), message_id
        response = bob.put(f"/messageexchange/BOB/inbox/{message_id}/status/acknowledged")
        assert response.status_code == 200
        ledger.delivered[message_id] += 1
    assert inbox(bob) == []
    for message_id in ledger.accepted:
        # an ack cut by a kill may have landed: that message was delivered by that ack
        count = ledger.delivered[message_id] + (
            message_id in ledger.ack_unknown and not ledger.delivered[message_id]
        )
        assert count == 1, f"{message_id} delivered {count} times"


def run(
    root: Path,
    rounds: int,
    seed: int,
    *,
    min_wait: float = 0.1,
    max_wait: float = 1.0,
    workers: int = 1,
) -> dict[str, object]:
    rng = random.Random(seed)
    template = make_data_dir(root / "template" / "data")
    server = start_mailroom(root / "server", template, env={"MAILROOM_WORKERS": str(workers)})
    ledger = Ledger()
    in_flight = 0
    restarts: list[float] = []
    try:
        for _ in range(rounds):
            work = Workload(server, ledger, rng)
            work.start()
            time.sleep(rng.uniform(min_wait, max_wait))
            server.kill()
            work.join()
            assert not ledger.failures, ledger.failures
            in_flight += 3  # uploads possibly cut between "file in place" and "row committed"
            started = time.perf_counter()
            server.start()
            restarts.append(time.perf_counter() - started)
            check_after_restart(server, ledger, in_flight)
        drain(server, ledger)
    finally:
        server.stop()
    return {
        "rounds": rounds,
        "seed": seed,
        "workers": workers,
        "accepted": len(ledger.accepted),
        "acknowledged": len(ledger.acked),
        "interrupted_by_kill": dict(ledger.interrupted),
        "completed": dict(ledger.completed),
        "restart_seconds_max": round(max(restarts, default=0), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--max-wait", type=float, default=1.0, help="longest traffic before a kill (s)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (mailroom serve --workers)")
    parser.add_argument("--dir", default=None, help="where the data directory goes (a temp dir in it)")
    parser.add_argument("--output", default=None, help="also write the summary JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailroom-faults-", dir=args.dir) as tmp:
        summary = run(Path(tmp), args.rounds, args.seed, max_wait=args.max_wait, workers=args.workers)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
