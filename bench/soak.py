"""Soak: 50 clients sending and receiving against one Mailroom for several minutes, on loopback.

    .venv/bin/python -m bench.soak                  # 50 clients, 5 minutes
    .venv/bin/python -m bench.soak --minutes 0.5    # a short run
    .venv/bin/python -m bench.soak --workers 2      # against two server processes

Each client has its own mailbox and one keep-alive connection (``bench/loadgen.py``). It sends
a message (1 B to 64 KiB of random bytes) to the next client's mailbox, then lists its own
inbox and downloads and acknowledges what it finds, round and round until time is up; then
every inbox is drained. Every message id and sha256 is tracked: the run passes only with zero
errors (any status but the expected one), zero lost messages (every 202 received exactly once
with the same sha256) and zero duplicates. The server's RSS is sampled every few seconds; the
samples are printed so a reader can see it stays flat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.server import free_port

from bench.loadgen import Connection
from bench.servers import Mailroom, recipients

MIB = 1024 * 1024


@dataclass
class Books:
    sent: dict[str, str] = field(default_factory=dict)  # message id → sha256
    received: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    requests: int = 0


async def receive_some(conn: Connection, box: str, books: Books, limit: int | None = None) -> int:
    base = f"/messageexchange/{box}/inbox"
    page = await conn.request("GET", base, box)
    books.requests += 1
    if page.status != 200:
        books.errors.append(f"list {page.status}")
        return 0
    ids = json.loads(page.body)["messages"][:limit]
    for message_id in ids:
        got = await conn.request("GET", f"{base}/{message_id}", box)
        acked = await conn.request("PUT", f"{base}/{message_id}/status/acknowledged", box)
        books.requests += 2
        if got.status != 200 or acked.status != 200:
            books.errors.append(f"download {got.status} ack {acked.status}")
            continue
        if hashlib.sha256(got.body).hexdigest() != books.sent.get(message_id):
            books.errors.append(f"{message_id}: body differs from what was sent (or unknown id)")
        books.received[message_id] += 1
    return len(ids)


async def client(server: Mailroom, box: str, to: str, books: Books, deadline: float, seed: int) -> None:
    conn = Connection(server.target)
    rng = __import__("random").Random(seed)
    try:
        while time.monotonic() < deadline:
            body = os.urandom(rng.randint(1, 64 * 1024))
            headers = {"mex-to": to, "mex-workflowid": "SOAK", "content-type": "application/octet-stream"}
            response = await conn.request(
                "POST", f"/messageexchange/{box}/outbox", box, headers=headers, body=body
            )
            books.requests += 1
            if response.status != 202:
                books.errors.append(f"send {response.status} {response.body[:200]!r}")
                continue
            books.sent[json.loads(response.body)["message_id"]] = hashlib.sha256(body).hexdigest()
            await receive_some(conn, box, books, limit=5)
        while await receive_some(conn, box, books):  # drain
            pass
    except Exception as exc:  # a dropped connection is an error too
        books.errors.append(f"{box}: {exc!r}")
    finally:
        await conn.close()


async def sample_rss(
    server: Mailroom, every: float, stop: asyncio.Event, out: list[tuple[float, float]]
) -> None:
    started = time.monotonic()
    while not stop.is_set():
        out.append((round(time.monotonic() - started, 1), round(server.rss() / MIB, 1)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def soak(server: Mailroom, clients: int, seconds: float, sample_every: float) -> dict[str, object]:
    books = Books()
    boxes = recipients(clients)
    deadline = time.monotonic() + seconds
    stop = asyncio.Event()
    samples: list[tuple[float, float]] = []
    sampler = asyncio.create_task(sample_rss(server, sample_every, stop, samples))
    cpu0, started = server.cpu_seconds(), time.perf_counter()
    await asyncio.gather(
        *(client(server, box, boxes[(n + 1) % clients], books, deadline, n) for n, box in enumerate(boxes))
    )
    elapsed = time.perf_counter() - started
    # a client may have finished draining before a neighbour's last send arrived: sweep once more
    for box in boxes:
        conn = Connection(server.target)
        while await receive_some(conn, box, books):
            pass
        await conn.close()
    stop.set()
    await sampler
    lost = [m for m in books.sent if books.received[m] == 0]
    duplicated = [m for m, n in books.received.items() if n > 1]
    unknown = [m for m in books.received if m not in books.sent]
    warm = [rss for at, rss in samples if at >= min(30.0, seconds / 3)] or [s[1] for s in samples]
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "messages_sent": len(books.sent),
        "messages_received": sum(books.received.values()),
        "requests": books.requests,
        "requests_per_second": round(books.requests / elapsed, 1),
        "errors": len(books.errors),
        "first_errors": books.errors[:5],
        "lost": len(lost),
        "duplicated": len(duplicated),
        "unknown": len(unknown),
        "server_cpu_seconds": round(server.cpu_seconds() - cpu0, 1),
        "rss_mib_samples": samples,
        "rss_mib_after_warmup": {"min": min(warm), "median": statistics.median(warm), "max": max(warm)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument(
        "--max-rss-growth-mib", type=float, default=20.0, help="fail above this after warm-up"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="serve with `mailroom serve --workers N` (RSS summed)"
    )
    parser.add_argument("--dir", default=None)
    parser.add_argument("--output", default=None, help="also write the summary JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mailroom-soak-", dir=args.dir) as tmp:
        server = Mailroom(Path(tmp), free_port(), args.clients, workers=args.workers)
        server.prepare()
        server.start()
        try:
            summary = asyncio.run(soak(server, args.clients, args.minutes * 60, args.sample_every))
            summary["workers"] = args.workers
        finally:
            server.stop()
    text = json.dumps(summary, indent=2)
    print(json.dumps({k: v for k, v in summary.items() if k != "rss_mib_samples"}, indent=2))
    samples = summary["rss_mib_samples"]
    assert isinstance(samples, list)
    print("rss MiB samples (s:MiB):", " ".join(f"{at:g}:{rss:g}" for at, rss in samples))
    if args.output:
        Path(args.output).write_text(text + "\n")
    rss = summary["rss_mib_after_warmup"]
    assert isinstance(rss, dict)
    ok = (
        summary["errors"] == 0
        and summary["lost"] == 0
        and summary["duplicated"] == 0
        and summary["unknown"] == 0
        and rss["max"] - rss["min"] <= args.max_rss_growth_mib
    )
    print("PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
