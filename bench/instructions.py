"""Instructions per message: the server's CPU cost, counted by callgrind rather than timed.

    .venv/bin/python -m bench.instructions                      # this tree
    .venv/bin/python -m bench.instructions --src ../base/src    # another tree, to compare

This machine's speed drifts by 20% within seconds, so a timed A/B run (``python -m bench.ab``)
cannot see a change of a few percent. Instructions can: the server runs under ``valgrind
--tool=callgrind``, is warmed up, and its counters are zeroed (``callgrind_control -z``) before
each phase and dumped (``-d``) after it, so a figure holds only that phase's requests, every
thread of the server included. Two things would make the count vary from run to run, and are
turned off: work on timers (job threads' polls, maintenance sweeps; a phase under valgrind lasts
long enough for them to outweigh a small change), and batches of varying size (one connection
by default, so every write is a commit of its own). So set, the same tree repeats to about
0.5% (400 messages: send 1.653 and 1.654, receive 2.255 and 2.251 million instructions each).

It counts work, not waits: a change that moves work off the event loop, or trades CPU for
latency, shows here only as its CPU. Figures are not comparable with other machines, nor with
runs outside valgrind (which is 30-60 times slower, so batches are larger); compare two trees,
run one after the other on the same machine.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.server import free_port

from bench.ab import TreeMailroom
from bench.run import log, small_messages, small_phase
from bench.servers import Server, ServerTls

ROOT = Path(__file__).resolve().parent.parent
_TOTALS = re.compile(rb"^(?:totals|summary):\s+(\d+)", re.MULTILINE)


class CallgrindMailroom(TreeMailroom):
    """Mailroom from the tree ``src`` under callgrind, its counters zeroed and dumped on demand."""

    def argv_env(self) -> tuple[list[str], dict[str, str]]:
        argv, env = super().argv_env()
        out = self.root / "callgrind.out"
        # --dump-instr=no, no cache simulation: the cheapest callgrind run that still counts
        return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "-q", *argv], env

    def env(self) -> dict[str, str]:
        # no work on timers (job polls, maintenance sweeps): under valgrind a phase lasts long
        # enough for them to add more instructions than a small change takes away
        quiet = {"JOB_THREADS": "0", "SWEEP_INTERVAL": "0", "ORPHAN_SCAN_INTERVAL": "0"}
        return {**super().env(), **{f"MAILROOM_{k}": v for k, v in quiet.items()}}

    def zero(self) -> None:
        subprocess.run(["callgrind_control", "-z", str(self.pid)], check=True, capture_output=True)

    def dump(self) -> int:
        """Dump the counters since the last zero; returns the instructions they hold."""
        before = set(self.root.glob("callgrind.out*"))
        subprocess.run(["callgrind_control", "-d", str(self.pid)], check=True, capture_output=True)
        for _ in range(600):
            new = set(self.root.glob("callgrind.out*")) - before
            if new:
                text = max(new, key=lambda p: p.stat().st_mtime).read_bytes()
                if match := _TOTALS.search(text):
                    return int(match.group(1))
            time.sleep(0.1)
        raise RuntimeError("callgrind wrote no dump")


def count(args: argparse.Namespace) -> dict[str, Any]:
    warm = argparse.Namespace(messages=args.warm, size=args.size, concurrency=args.concurrency, processes=1)
    phase = argparse.Namespace(
        messages=args.messages, size=args.size, concurrency=args.concurrency, processes=1
    )
    with tempfile.TemporaryDirectory(prefix="mailroom-callgrind-") as tmp:
        root = Path(args.keep or tmp)
        Server.tls = None if args.plain_http else ServerTls.made_in(root / "pki")
        server = CallgrindMailroom(Path(args.src), root / "server", free_port(), 8)
        server.prepare()
        log(f"starting the server of {args.src} under callgrind")
        server.start()
        try:
            small_messages(server, warm)
            rounds: list[dict[str, float]] = []
            for n in range(args.rounds):
                rounds.append(_round(server, phase))
                log(f"round {n + 1}: {rounds[-1]}")
        finally:
            server.stop()
    return {"src": args.src, "messages": args.messages, "size": args.size, "rounds": rounds}


def _round(server: CallgrindMailroom, phase: argparse.Namespace) -> dict[str, float]:
    """One send phase and one receive phase, each counted on its own (millions per message)."""
    figures: dict[str, float] = {}
    for name in ("send", "receive"):
        server.zero()
        result = small_phase(server, phase, name)
        instructions = server.dump()
        if result["errors"]:
            raise SystemExit(f"{name}: {result['errors']} errors: {result['first_errors']}")
        figures[f"{name} MIr/msg"] = round(instructions / result["messages"] / 1e6, 3)
    return figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", default=str(ROOT / "src"), help="the source tree (its src directory)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--messages", type=int, default=400, help="small messages per phase")
    parser.add_argument("--warm", type=int, default=200, help="messages sent and received first")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="connections (1: one commit per write, so no batch sizes that vary from run to run)",
    )
    parser.add_argument("--plain-http", action="store_true")
    parser.add_argument(
        "--keep", metavar="DIR", help="work in DIR and keep its dumps (for callgrind_annotate)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    print(json.dumps(count(parse_args(argv)), indent=2))


if __name__ == "__main__":
    sys.exit(main())
