"""Benchmark a MESH server on loopback: small-message rates, latency, a large chunked transfer.

Starts Mailroom (SQLite + payload files, durable settings) as a real process, then drives it
with a lean asyncio load generator over keep-alive connections. Prints a JSON summary.

    .venv/bin/python bench/bench_mesh.py --messages 2000 --concurrency 16 --large-mib 256

Figures quoted in docs come from this script; the machine and command go with them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

from mailroom.auth.mesh_hmac import build_header

KEY = "BenchKey"
PASSWORD = "password"
V2 = "application/vnd.mesh.v2+json"


def auth(mailbox: str) -> dict[str, str]:
    header = build_header(mailbox, PASSWORD, KEY, nonce=uuid.uuid4().hex, at=datetime.now(UTC))
    return {"authorization": header, "accept": V2}


class Server:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_rss_kib = 0
        self._sampling = False

    def start(self) -> None:
        env = {**os.environ, "MAILROOM_SHARED_KEY": KEY, "MAILROOM_LOG_LEVEL": "warning"}
        for mailbox in ("ALICE", "BOB"):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mailroom",
                    "mailbox",
                    "add",
                    mailbox,
                    "--password",
                    PASSWORD,
                    "--data-dir",
                    str(self.data_dir),
                ],
                check=True,
                env=env,
                capture_output=True,
            )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mailroom",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/_ping").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def sample_rss(self) -> None:
        self._sampling = True

        def loop() -> None:
            while self._sampling:
                self.peak_rss_kib = max(self.peak_rss_kib, self.rss_kib())
                time.sleep(0.05)

        threading.Thread(target=loop, daemon=True).start()

    def stop(self) -> None:
        self._sampling = False
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def send_small(base: str, count: int, concurrency: int, size: int) -> dict[str, float]:
    latencies: list[float] = []
    body = os.urandom(size)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            queue.get_nowait()
            headers = {**auth("ALICE"), "mex-to": "BOB", "mex-workflowid": "BENCH"}
            started = time.perf_counter()
            response = await client.post(
                f"{base}/messageexchange/ALICE/outbox", content=body, headers=headers
            )
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 202, response.text

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "messages": count,
        "seconds": round(elapsed, 3),
        "per_second": round(count / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
    }


async def receive_all(base: str, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    received = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        started = time.perf_counter()
        while True:
            page = await client.get(f"{base}/messageexchange/BOB/inbox", headers=auth("BOB"))
            ids = page.json()["messages"]
            if not ids:
                break

            async def fetch(message_id: str) -> None:
                t0 = time.perf_counter()
                got = await client.get(f"{base}/messageexchange/BOB/inbox/{message_id}", headers=auth("BOB"))
                assert got.status_code == 200
                acked = await client.put(
                    f"{base}/messageexchange/BOB/inbox/{message_id}/status/acknowledged", headers=auth("BOB")
                )
                assert acked.status_code == 200
                latencies.append((time.perf_counter() - t0) / 2)

            for start in range(0, len(ids), concurrency):
                await asyncio.gather(*(fetch(i) for i in ids[start : start + concurrency]))
            received += len(ids)
        elapsed = time.perf_counter() - started
    return {
        "messages": received,
        "seconds": round(elapsed, 3),
        "per_second": round(received / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
    }


async def large_transfer(server: Server, mib: int, chunk_mib: int) -> dict[str, float]:
    chunk_bytes = chunk_mib * 1024 * 1024
    total_chunks = max(1, (mib + chunk_mib - 1) // chunk_mib)
    digest_up = hashlib.sha256()
    block = os.urandom(1024 * 1024)

    async def chunk_body(size: int) -> AsyncIterator[bytes]:
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            digest_up.update(piece)
            sent += len(piece)
            yield piece

    server.sample_rss()
    baseline = server.rss_kib()
    async with httpx.AsyncClient(timeout=600) as client:
        started = time.perf_counter()
        message_id = ""
        remaining = mib * 1024 * 1024
        for n in range(1, total_chunks + 1):
            size = min(chunk_bytes, remaining)
            remaining -= size
            headers = {**auth("ALICE"), "mex-chunk-range": f"{n}:{total_chunks}"}
            if n == 1:
                headers.update({"mex-to": "BOB", "mex-workflowid": "BENCH_LARGE"})
                url = f"{server.base}/messageexchange/ALICE/outbox"
            else:
                url = f"{server.base}/messageexchange/ALICE/outbox/{message_id}/{n}"
            response = await client.post(url, content=chunk_body(size), headers=headers)
            assert response.status_code == 202, response.text
            message_id = message_id or response.json()["message_id"]
        up = time.perf_counter() - started

        digest_down = hashlib.sha256()
        started = time.perf_counter()
        for n in range(1, total_chunks + 1):
            url = f"{server.base}/messageexchange/BOB/inbox/{message_id}/{n}"
            async with client.stream("GET", url, headers=auth("BOB")) as response:
                assert response.status_code in (200, 206)
                async for piece in response.aiter_raw():
                    digest_down.update(piece)
        down = time.perf_counter() - started
    assert digest_up.hexdigest() == digest_down.hexdigest(), "checksum mismatch"
    return {
        "mib": mib,
        "chunks": total_chunks,
        "up_mb_s": round(mib * 1.048576 / up, 1),
        "down_mb_s": round(mib * 1.048576 / down, 1),
        "checksum_verified": True,
        "server_baseline_rss_mib": round(baseline / 1024, 1),
        "server_peak_rss_mib": round(server.peak_rss_kib / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--size", type=int, default=1024, help="small message size in bytes")
    parser.add_argument("--large-mib", type=int, default=256, help="0 skips the large transfer")
    parser.add_argument("--chunk-mib", type=int, default=75)
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        server = Server(Path(tmp) / "data", args.port)
        server.start()
        try:
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            server_cpu0 = server.cpu_seconds()
            send = asyncio.run(send_small(server.base, args.messages, args.concurrency, args.size))
            server_cpu1 = server.cpu_seconds()
            receive = asyncio.run(receive_all(server.base, args.concurrency))
            server_cpu2 = server.cpu_seconds()
            send["server_cpu_ms_per_message"] = round((server_cpu1 - server_cpu0) / args.messages * 1000, 2)
            receive["server_cpu_ms_per_message"] = round(
                (server_cpu2 - server_cpu1) / args.messages * 1000, 2
            )
            results: dict[str, object] = {"send": send, "receive": receive}
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            results["load_generator_cpu_seconds"] = round(
                (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime), 2
            )
            if args.large_mib:
                results["large"] = asyncio.run(large_transfer(server, args.large_mib, args.chunk_mib))
        finally:
            server.stop()
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
