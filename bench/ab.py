"""Two Mailroom source trees side by side: the small-message phase, rounds alternating.

    git worktree add --detach ../base HEAD        # the code before a change
    .venv/bin/python -m bench.ab --a ../base/src --b src --rounds 4

This machine's speed drifts by 20% between runs, more than most single changes move the figures,
so a change is measured against the code before it in the same run: both servers run at once
(each started with its tree first on ``PYTHONPATH``), over HTTPS with client certificates as in
``python -m bench``, the order alternating each round, and the medians of each are printed.
Figures for the docs still come from ``python -m bench``; this tells whether a change is worth
keeping.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.support.server import free_port

from bench.run import log, small_messages
from bench.servers import Mailroom, Server, ServerTls

#: (phase, figure) pairs printed for each round and as medians.
FIGURES = [
    ("send", "per_second"),
    ("send", "server_cpu_ms_per_message"),
    ("send", "p50_ms"),
    ("receive", "per_second"),
    ("receive", "server_cpu_ms_per_message"),
    ("receive", "p50_ms"),
]


class TreeMailroom(Mailroom):
    """Mailroom run from the source tree ``src`` (its ``mailroom`` package found first)."""

    def __init__(self, src: Path, root: Path, port: int, receivers: int) -> None:
        super().__init__(root, port, receivers)
        self.src = src

    def env(self) -> dict[str, str]:
        return {**super().env(), "PYTHONPATH": str(self.src.resolve())}


def compare(args: argparse.Namespace) -> dict[str, Any]:
    phase = argparse.Namespace(messages=args.messages, size=args.size, concurrency=8, processes=1)
    warm = argparse.Namespace(messages=400, size=args.size, concurrency=8, processes=1)
    rounds: dict[str, list[list[float]]] = {"a": [], "b": []}
    with tempfile.TemporaryDirectory(prefix="mailroom-ab-") as tmp:
        root = Path(tmp)
        Server.tls = None if args.plain_http else ServerTls.made_in(root / "pki")
        servers = {
            name: TreeMailroom(Path(getattr(args, name)), root / name, free_port(), 8) for name in rounds
        }
        try:
            for server in servers.values():
                server.prepare()
                server.start()
                small_messages(server, warm)
            for n in range(args.rounds):
                for name in ("a", "b") if n % 2 == 0 else ("b", "a"):
                    result = small_messages(servers[name], phase)
                    errors = result["send"]["errors"] + result["receive"]["errors"]
                    if errors:
                        raise SystemExit(f"{name}: {errors} errors: {result['send']['first_errors']}")
                    rounds[name].append([float(result[p][f]) for p, f in FIGURES])
                    log(f"{name} round {n + 1}: {rounds[name][-1]}")
        finally:
            for server in servers.values():
                server.stop()
    medians = {name: _medians(rows) for name, rows in rounds.items()}
    return {"a": args.a, "b": args.b, "medians": medians, "rounds": rounds}


def _medians(rows: list[list[float]]) -> dict[str, float]:
    columns = zip(*rows, strict=True)
    return {f"{p} {f}": round(statistics.median(c), 3) for (p, f), c in zip(FIGURES, columns, strict=True)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--a", required=True, help="the first source tree (its src directory)")
    parser.add_argument("--b", default="src", help="the second source tree (default: this one)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--messages", type=int, default=2000, help="small messages per round")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--plain-http", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    print(json.dumps(compare(parse_args(argv))["medians"], indent=2))


if __name__ == "__main__":
    sys.exit(main())
