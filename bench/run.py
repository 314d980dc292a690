"""Mailroom and NHS's mesh-sandbox side by side, on loopback, in one run.

    .venv/bin/python -m bench                      # the full run (see docs/performance.md)
    .venv/bin/python -m bench --quick              # a short smoke run while developing
    .venv/bin/python -m bench.report --write-docs  # docs and chart again from bench/results.json

Phases, each run against both servers with the same clients:

1. small messages with the lean load generator (``bench/loadgen.py``): send rate, then receive
   rate (list + download + acknowledge), p50/p99 request latency, CPU per message of the
   server and of the load generator;
   then, as a latency curve, the same at 1, 2, 4 and 8 connections (``--latency-clients``);
2. the same flows with NHS's ``mesh_client.MeshClient`` (a few threads);
3. one large chunked message (``bench/bulk.py``): MB/s up and down, sha256 checked, the
   server's peak RSS; also against the pipeline floor (``bench/floor.py``), a server doing only
   the work no server can avoid, which shows what this machine allows;
4. a deep inbox: seeded through each server's own store, then time to the first page and to
   page through every message, at each depth asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import mmap
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.server import free_port

from bench import bulk, json_api, loadgen
from bench.servers import (
    DEEP,
    SENDER,
    Floor,
    Mailroom,
    MeshSandbox,
    MeshServer,
    RssSampler,
    Server,
    ServerTls,
    fan_out_boxes,
    recipients,
)

RESULTS = Path(__file__).resolve().parent / "results.json"
MIB = 1024 * 1024


def percentile_ms(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def rates(tally: loadgen.Tally, seconds: float, server_cpu: float) -> dict[str, Any]:
    count = max(tally.messages, 1)
    return {
        "messages": tally.messages,
        "requests": tally.requests,
        "errors": len(tally.errors),
        "first_errors": tally.errors[:3],
        "seconds": round(seconds, 3),
        "per_second": round(tally.messages / seconds, 1),
        "p50_ms": percentile_ms(tally.latencies, 0.50),
        "p99_ms": percentile_ms(tally.latencies, 0.99),
        "server_cpu_ms_per_message": round(server_cpu / count * 1000, 3),
        "client_cpu_ms_per_message": round(tally.cpu_seconds / count * 1000, 3),
        "server_cpu_share": round(server_cpu / seconds, 2),
        "client_cpu_share": round(tally.cpu_seconds / seconds, 2),
    }


def small_messages(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    return {phase: small_phase(server, args, phase) for phase in ("send", "receive")}


def small_phase(server: Server, args: argparse.Namespace, phase: str) -> dict[str, Any]:
    """``args.messages`` small messages sent (``phase`` "send") or received, over ``args.concurrency``
    connections to as many recipients: a receive phase takes what the send phase before it left."""
    boxes = recipients(args.concurrency)
    per_conn, extra = divmod(args.messages, args.concurrency)
    counts = [per_conn + (1 if n < extra else 0) for n in range(args.concurrency)]
    if phase == "send":
        body = os.urandom(args.size)
        specs = [
            {"sender": SENDER, "recipients": [boxes[n]], "count": counts[n], "body": body}
            for n in range(args.concurrency)
        ]
    else:
        specs = [
            {"mailbox": boxes[n], "expect": counts[n], "size": args.size} for n in range(args.concurrency)
        ]
    cpu0, started = server.cpu_seconds(), time.perf_counter()
    tally = loadgen.run_processes(phase, server.target, specs, args.processes)
    return rates(tally, time.perf_counter() - started, server.cpu_seconds() - cpu0)


def latency(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """Small messages sent, then received, at each of ``args.latency_clients`` connections.

    Each client waits for its answer before the next request (as the MESH client does), so by
    Little's law the rate and the latency are bound together: with N clients, a p50 of L ms
    needs about N / L thousand messages a second. The curve shows where the server stops
    answering faster and starts queueing: the one-client latency is its floor.
    """
    levels = []
    for clients in args.latency_clients:
        phase = argparse.Namespace(
            messages=args.latency_messages, size=args.size, concurrency=clients, processes=1
        )
        levels.append({"clients": clients, **small_messages(server, phase)})
    return {"levels": levels}


def json_messages(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """The JSON messaging API on Mailroom: small messages written and retrieved as in
    ``small_messages`` (same connections, count and body size), each round paired with a MESH
    pass just before it on the same server (``mesh``: the machine's speed drifts between the
    phases, so the JSON API is compared with the MESH face under the same conditions), then one
    attachment written to ``--fan-out`` recipients and the bytes it added to the payload store."""
    mesh = small_messages(server, args)
    result = json_small(server, args)
    result["mesh"] = {"send": mesh["send"], "receive": mesh["receive"]}
    if args.fan_out > 0 and isinstance(server, Mailroom) and server.fan_out >= args.fan_out:
        payloads = server.data_dir / "payloads"
        before = json_api.stored_bytes(payloads)
        fan = asyncio.run(
            json_api.fan_out(server.target, SENDER, fan_out_boxes(args.fan_out), args.fan_out_mib)
        )
        fan["recipients"] = args.fan_out
        fan["stored_bytes_added"] = json_api.stored_bytes(payloads) - before
        result["fan_out"] = fan
    return result


def json_small(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """Small messages through the JSON API: D4Science's write-message, MFT Gateway's inbox."""
    boxes = recipients(args.concurrency)
    per_conn, extra = divmod(args.messages, args.concurrency)
    counts = [per_conn + (1 if n < extra else 0) for n in range(args.concurrency)]
    body = "x" * args.size
    send_specs = [
        {"sender": SENDER, "recipients": [boxes[n]], "count": counts[n], "body": body}
        for n in range(args.concurrency)
    ]
    cpu0, started = server.cpu_seconds(), time.perf_counter()
    sent = json_api.run_processes("send", server.target, send_specs, args.processes)
    send = rates(sent, time.perf_counter() - started, server.cpu_seconds() - cpu0)
    receive_specs = [
        {"mailbox": boxes[n], "expect": counts[n], "size": args.size} for n in range(args.concurrency)
    ]
    cpu0, started = server.cpu_seconds(), time.perf_counter()
    got = json_api.run_processes("receive", server.target, receive_specs, args.processes)
    receive = rates(got, time.perf_counter() - started, server.cpu_seconds() - cpu0)
    return {"send": send, "receive": receive}


def mesh_client_tls(tls: loadgen.Tls | None) -> dict[str, Any]:
    """MeshClient's arguments for mutual TLS (none for plain HTTP)."""
    return {} if tls is None else {"verify": tls.ca, "cert": (tls.cert, tls.key)}


def mesh_client_flows(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """NHS's MeshClient: ``threads`` clients send, then each empties its own inbox."""
    from mesh_client import MeshClient

    target = server.target
    url = target.url
    boxes = recipients(args.mesh_client_threads)
    each = max(1, args.mesh_client_messages // len(boxes))
    body = os.urandom(args.size)
    errors: list[str] = []

    certificates = mesh_client_tls(target.tls)

    def client(mailbox: str) -> MeshClient:
        key = target.shared_key.encode()
        return MeshClient(url, mailbox, target.password, shared_key=key, max_retries=0, **certificates)

    def send(box: str) -> None:
        with client(SENDER) as mesh:
            for _ in range(each):
                mesh.send_message(box, body, workflow_id="BENCH_MC")

    def receive(box: str) -> None:
        with client(box) as mesh:
            done = 0
            while done < each:
                ids = mesh.list_messages()
                if not ids:
                    errors.append(f"{box}: inbox empty after {done}")
                    return
                for message_id in ids:
                    message = mesh.retrieve_message(message_id)
                    if message.read() != body:
                        errors.append(f"{box}: body differs")
                    message.acknowledge()
                    done += 1

    out: dict[str, Any] = {"clients": len(boxes), "messages": each * len(boxes)}
    for phase, work in (("send", send), ("receive", receive)):
        cpu0, client0 = server.cpu_seconds(), _own_cpu()
        started = time.perf_counter()
        threads = [threading.Thread(target=_guard(work, errors), args=(box,)) for box in boxes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        count = each * len(boxes)
        out[phase] = {
            "per_second": round(count / seconds, 1),
            "seconds": round(seconds, 3),
            "server_cpu_ms_per_message": round((server.cpu_seconds() - cpu0) / count * 1000, 3),
            "client_cpu_ms_per_message": round((_own_cpu() - client0) / count * 1000, 3),
        }
    out["errors"] = errors[:5]
    return out


def _guard(work: Any, errors: list[str]) -> Any:
    def run(box: str) -> None:
        try:
            work(box)
        except Exception as exc:
            errors.append(f"{box}: {exc!r}"[:300])

    return run


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def large_message(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    total, chunk = args.large_mib * MIB, args.chunk_mib * MIB
    baseline = server.rss()
    cpu0 = server.cpu_seconds()
    with RssSampler(server.pid) as rss:
        result = bulk.large_transfer(server.target, SENDER, "BOB00", total, chunk)
    server_cpu = server.cpu_seconds() - cpu0
    seconds = result.up_seconds + result.down_seconds
    return {
        "mib": args.large_mib,
        "chunk_mib": args.chunk_mib,
        "chunks": -(-total // chunk),
        "up_mb_s": round(total / 1e6 / result.up_seconds, 1),
        "down_mb_s": round(total / 1e6 / result.down_seconds, 1),
        "up_seconds": round(result.up_seconds, 2),
        "down_seconds": round(result.down_seconds, 2),
        "checksum_verified": result.sha256_up == result.sha256_down,
        "sha256": result.sha256_down,
        "client_cpu_seconds": round(result.client_cpu_seconds, 2),
        "server_cpu_seconds": round(server_cpu, 2),
        # share of the two cores' time both processes used: near 2.0 means CPU-bound
        "cpu_busy_cores": round((server_cpu + result.client_cpu_seconds) / seconds, 2),
        "server_baseline_rss_mib": round(baseline / MIB, 1),
        "server_peak_rss_mib": round(rss.peak / MIB, 1),
    }


def deep_inbox(server: MeshServer, depth: int, args: argparse.Namespace) -> dict[str, Any]:
    """Seed (server stopped), start, then time the first page and the whole walk."""
    server.stop()
    seed_seconds = server.seed_deep_inbox(depth)
    start_seconds = server.start()
    firsts = asyncio.run(loadgen.first_page_times(server.target, DEEP, args.first_page_repeats))
    _first, walk, listed, pages = asyncio.run(loadgen.page_through(server.target, DEEP, 500))
    return {
        "depth": depth,
        "seed_seconds": round(seed_seconds, 1),
        "startup_seconds": round(start_seconds, 2),
        "first_page_ms_cold": round(firsts[0] * 1000, 2),  # the first request after start
        "first_page_ms_median": round(statistics.median(firsts[1:] or firsts) * 1000, 2),
        "first_page_ms_max": round(max(firsts[1:] or firsts) * 1000, 2),
        "page_through_seconds": round(walk, 2),
        "pages": pages,
        "listed": listed,
        "rss_after_mib": round(server.rss() / MIB, 1),
    }


def disk_baseline(directory: Path, mib: int, repeats: int = 3) -> dict[str, Any]:
    """What the disk itself does, each the median of ``repeats`` runs: write ``mib`` in 1 MiB
    pieces and fsync (through the page cache, as most programs write), the same with O_DIRECT
    (past it, as Mailroom writes payloads), and reading the file back."""
    path = directory / "disk-probe"
    buffered = [_write_probe(path, mib, direct=False) for _ in range(repeats)]
    direct: list[float] = []
    first_read = None
    with contextlib.suppress(OSError, AttributeError):  # a filesystem (or OS) without O_DIRECT
        direct = [_write_probe(path, mib, direct=True) for _ in range(repeats)]
        _write_probe(path, mib, direct=True, keep=True)
        first_read = _read_probe(path, mib)  # as a download reads a payload Mailroom wrote
        path.unlink()
    _write_probe(path, mib, direct=False, keep=True)
    read = _read_probe(path, mib)
    path.unlink()
    return {
        "write_fsync_mb_s": statistics.median(buffered),
        "write_fsync_runs": buffered,
        "direct_write_fsync_mb_s": statistics.median(direct) if direct else None,
        "direct_write_fsync_runs": direct,
        "first_read_after_direct_write_mb_s": first_read,
        "read_mb_s": read,
    }


def _read_probe(path: Path, mib: int) -> float:
    """MB/s of reading the file in 256 KiB pieces, as Mailroom's downloads do."""
    started = time.perf_counter()
    with path.open("rb") as handle:
        while handle.read(256 * 1024):
            pass
    return round(mib * MIB / 1e6 / (time.perf_counter() - started), 1)


def _write_probe(path: Path, mib: int, *, direct: bool, keep: bool = False) -> float:
    """MB/s of writing ``mib`` MiB and one fsync (O_DIRECT from a page-aligned buffer if ``direct``)."""
    block = mmap.mmap(-1, MIB)
    block.write(os.urandom(MIB))
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_DIRECT if direct else 0)
    started = time.perf_counter()
    fd = os.open(path, flags, 0o600)
    try:
        for _ in range(mib):
            os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
        block.close()
    seconds = time.perf_counter() - started
    if not keep:
        path.unlink()
    return round(mib * MIB / 1e6 / seconds, 1)


def machine(data_dir: Path) -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    device = subprocess.run(
        ["df", "--output=source", str(data_dir)], capture_output=True, text=True, check=False
    ).stdout.split()[-1]
    name = Path(device).name.rstrip("0123456789") if device.startswith("/dev/") else device
    rotational = Path(f"/sys/block/{name}/queue/rotational")
    spins = rotational.exists() and rotational.read_text().strip() == "1"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "disk": f"{device} ({'rotational' if spins else 'non-rotational'})",
        "filesystem_free_gib": round(shutil.disk_usage(data_dir).free / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Mailroom ÷ mesh-sandbox for rates (higher is better for Mailroom)."""
    m, s = results["servers"]["mailroom"], results["servers"]["mesh-sandbox"]
    out: dict[str, Any] = {}

    def put(name: str, a: float | None, b: float | None) -> None:
        if a is not None and b:
            out[name] = round(a / b, 2)

    for phase in ("send", "receive"):
        if "json" in m:  # the JSON API against the MESH pass just before it (json_messages)
            put(
                f"json_{phase}_rate (of mesh)",
                m["json"][phase]["per_second"],
                m["json"]["mesh"][phase]["per_second"],
            )
        if "small" in m and "small" in s:
            put(f"small_{phase}_rate", m["small"][phase]["per_second"], s["small"][phase]["per_second"])
            put(
                f"small_{phase}_server_cpu_per_message (sandbox/mailroom)",
                s["small"][phase]["server_cpu_ms_per_message"],
                m["small"][phase]["server_cpu_ms_per_message"],
            )
        if "mesh_client" in m and "mesh_client" in s:
            put(
                f"mesh_client_{phase}_rate",
                m["mesh_client"][phase]["per_second"],
                s["mesh_client"][phase]["per_second"],
            )
    workers: dict[str, Any] = next(
        (w for name, w in results["servers"].items() if name.startswith("mailroom --workers")), {}
    )
    for phase in ("send", "receive"):
        if "small" in workers and "small" in s:
            put(
                f"small_{phase}_rate_workers",
                workers["small"][phase]["per_second"],
                s["small"][phase]["per_second"],
            )
    if "large" in m and "large" in s:
        put("large_up", m["large"]["up_mb_s"], s["large"]["up_mb_s"])
        put("large_down", m["large"]["down_mb_s"], s["large"]["down_mb_s"])
    if m.get("deep") and s.get("deep"):
        deepest_m, deepest_s = m["deep"][-1], s["deep"][-1]
        put(
            "deep_first_page (sandbox/mailroom)",
            deepest_s["first_page_ms_median"],
            deepest_m["first_page_ms_median"],
        )
        put(
            "deep_page_through (sandbox/mailroom)",
            deepest_s["page_through_seconds"],
            deepest_m["page_through_seconds"],
        )
    return out


def run_phase(
    name: str, phase: Any, servers: list[Server], results: dict[str, Any], args: argparse.Namespace
) -> None:
    """Run ``phase`` on each server ``--rounds`` times, alternating the order.

    The machine is shared: a burst of other work can land on one server's turn. Each server
    keeps its best round (highest message rate, or upload rate for the large message); every
    round is kept in the JSON under ``rounds``.
    """
    rounds: dict[str, list[dict[str, Any]]] = {server.name: [] for server in servers}
    count = args.rounds
    for n in range(count):
        for server in servers if n % 2 == 0 else list(reversed(servers)):
            log(f"{name} (round {n + 1} of {count}): {server.name}")
            rounds[server.name].append(phase(server, args))
            log(json.dumps(rounds[server.name][-1]))
    for server in servers:
        best = max(rounds[server.name], key=_score)
        results["servers"][server.name][name] = {**best, "rounds": rounds[server.name]} if count > 1 else best


def _score(result: dict[str, Any]) -> float:
    if "levels" in result:  # latency: the round with the most messages a second overall
        return sum(_score(level) for level in result["levels"])
    if "send" in result:
        return float(result["send"]["per_second"] + result["receive"]["per_second"])
    return float(result.get("up_mb_s", 0))


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(args.dir) if args.dir else None
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-", dir=base) as tmp:
        root = Path(tmp)
        results: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(["-m", "bench", *(a for a in sys.argv[1:] if a != "--write-docs")]),
            "settings": {k: v for k, v in vars(args).items() if k not in ("write_docs", "output")},
            "machine": machine(root),
            "disk": disk_baseline(root, args.disk_probe_mib),
            "servers": {},
        }
        Server.tls = None if args.plain_http else ServerTls.made_in(root / "pki")
        results["transport"] = "http" if args.plain_http else "https with client certificates"
        receivers = max(args.concurrency, args.mesh_client_threads, *args.latency_clients)
        servers: list[MeshServer] = [
            Mailroom(root / "mailroom", free_port(), receivers, fan_out=args.fan_out),
            MeshSandbox(root / "mesh-sandbox", free_port(), receivers),
        ]
        extra: dict[str, Server] = {}  # servers for one phase only
        if args.workers > 1:  # the other phases are about one process
            extra["small"] = Mailroom(root / "mailroom-workers", free_port(), receivers, workers=args.workers)
        if args.floor:
            extra["large"] = Floor(root / "floor", free_port(), receivers)
        try:
            for server in [*servers, *extra.values()]:
                server.prepare()
                server.start()
                results["servers"][server.name] = {"idle_rss_mib": round(server.rss() / MIB, 1)}
            phases = [
                ("small", small_messages, args.messages > 0),
                ("latency", latency, bool(args.latency_clients) and args.latency_messages > 0),
                ("json", json_messages, args.messages > 0 and args.json),
                ("mesh_client", mesh_client_flows, args.mesh_client_messages > 0),
                ("large", large_message, args.large_mib > 0),
            ]
            for name, phase, wanted in phases:
                if wanted:
                    on = [s for s in servers if isinstance(s, Mailroom)] if name == "json" else servers
                    run_phase(name, phase, [*on, *([extra[name]] if name in extra else [])], results, args)
            for server in extra.values():
                server.stop()
            for server in servers:
                results["servers"][server.name]["deep"] = []
                for depth in args.depths:
                    log(f"deep inbox {depth}: {server.name}")
                    found = deep_inbox(server, depth, args)
                    results["servers"][server.name]["deep"].append(found)
                    log(json.dumps(found))
                results["servers"][server.name]["rss_at_end_mib"] = round(server.rss() / MIB, 1)
        finally:
            for server in [*servers, *extra.values()]:
                server.stop()
    results["ratios"] = ratios(results)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return results


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=4000, help="small messages per server (0 skips)")
    parser.add_argument("--size", type=int, default=1024, help="small message size in bytes")
    parser.add_argument("--concurrency", type=int, default=8, help="connections (one inbox each)")
    parser.add_argument("--processes", type=int, default=1, help="load generator processes")
    parser.add_argument(
        "--latency-clients",
        type=lambda text: [int(x) for x in text.split(",") if x],
        default=[1, 2, 4, 8],
        help="connections of each level of the latency phase, comma separated ('' skips)",
    )
    parser.add_argument("--latency-messages", type=int, default=800, help="small messages per latency level")
    parser.add_argument(
        "--plain-http",
        action="store_true",
        help="plain HTTP instead of HTTPS with client certificates (how MESH is deployed)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="small messages also through `mailroom serve --workers N` (1 skips)",
    )
    parser.add_argument(
        "--no-json", dest="json", action="store_false", help="skip the JSON messaging API phase"
    )
    parser.add_argument(
        "--fan-out", type=int, default=100, help="recipients of the fan-out message (0 skips)"
    )
    parser.add_argument("--fan-out-mib", type=int, default=10, help="size of the fan-out attachment")
    parser.add_argument("--mesh-client-messages", type=int, default=200, help="0 skips the mesh-client phase")
    parser.add_argument("--mesh-client-threads", type=int, default=4)
    parser.add_argument("--large-mib", type=int, default=1024, help="0 skips the large message")
    parser.add_argument("--chunk-mib", type=int, default=75, help="mesh-client's default chunk size")
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the pipeline floor (bench/floor.py) in the large-message phase",
    )
    parser.add_argument(
        "--depths",
        type=lambda text: [int(x) for x in text.split(",") if x],
        default=[1000, 100_000],
        help="deep-inbox depths, comma separated, ascending ('' skips)",
    )
    parser.add_argument("--first-page-repeats", type=int, default=20)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the small-message phases, servers alternating"
    )
    parser.add_argument("--disk-probe-mib", type=int, default=512)
    parser.add_argument(
        "--dir", default=os.environ.get("BENCH_DIR"), help="where data dirs go (a temp dir in it)"
    )
    parser.add_argument("--output", default=str(RESULTS), help="results JSON")
    parser.add_argument(
        "--write-docs", action="store_true", help="also regenerate docs/performance.md and the chart"
    )
    parser.add_argument("--quick", action="store_true", help="small numbers everywhere: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.mesh_client_messages, args.large_mib = 800, 40, 150
        args.latency_clients, args.latency_messages = [1, 8], 200
        args.depths, args.first_page_repeats, args.disk_probe_mib = [1000, 5000], 5, 64
        args.rounds = 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = run(args)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    log(f"results in {args.output}")
    print(json.dumps(results["ratios"], indent=2))
    if args.write_docs:
        from bench import report

        report.write_all(results)
