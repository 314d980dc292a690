"""VerifyStore's reading rate against a plain SHA-256 read of the same payload files.

A filesystem payload store is filled with ``--mib`` MiB of payloads (``--payload-mib`` each,
random bytes, stored through the store as uploads are, with their chunk rows), then, in turn
``--rounds`` times: the ``VerifyStore`` job, run through the job runner as a server runs it
(batches of rows, the store's own reads, progress and checkpoint writes), and a plain loop that
opens each payload file, reads it 1 MiB at a time into one buffer and hashes it. Before each
pass every file is dropped from the page cache (``posix_fadvise(DONTNEED)``), so both read from
the disk; the figure is the median of the rounds. The target is 70% of the plain rate.

Run: ``.venv/bin/python -m bench.verify_store [--mib 2048] [--output bench/verify.json]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mailroom.container import Container, build_container
from mailroom.domain.jobs import JobState
from mailroom.domain.messages import Message, MessageStatus, MessageType, Metadata, Party, StatusDetail
from mailroom.ids import new_message_id
from mailroom.settings import load_settings
from mailroom.storage.payloads.base import chunk_key
from mailroom.storage.repos import messages
from mailroom.storage.repos.messages import ChunkRow

MIB = 1024 * 1024
OUTPUT = Path(__file__).resolve().parent / "verify.json"


def fill(container: Container, total_mib: int, payload_mib: int) -> list[Path]:
    now = datetime.now(UTC)
    block = os.urandom(MIB)
    for n in range(total_mib // payload_mib):
        message_id = new_message_id(now)
        key = chunk_key(message_id, 1)
        # distinct payloads: the block rotated by n bytes
        piece = block[n % MIB :] + block[: n % MIB]
        stored = container.payloads.put(key, (piece for _ in range(payload_mib)))
        message = Message(
            message_id=message_id, message_type=MessageType.DATA, sender=Party("A"), recipient=Party("B"),
            meta=Metadata(), total_chunks=1, file_size=stored.size, status=MessageStatus.ACCEPTED,
            detail=StatusDetail(), created_at=now, status_at=now, accepted_at=now, acknowledged_at=None,
            inbox_expires_at=None,
        )  # fmt: skip
        with container.db.write() as conn:
            messages.insert_message(conn, message)
            messages.insert_chunk(conn, message_id, ChunkRow(1, stored.size, stored.sha256, key), now)
    return sorted(p for p in (container.settings.data_dir / "payloads" / "objects").rglob("*") if p.is_file())


def drop_cache(files: list[Path]) -> None:
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def plain(files: list[Path]) -> tuple[float, int]:
    buffer = bytearray(MIB)
    view = memoryview(buffer)
    total = 0
    started = time.perf_counter()
    for path in files:
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                digest.update(view[:count])
                total += count
    return time.perf_counter() - started, total


def verify(container: Container) -> tuple[float, int]:
    runner = container.job_runner()
    job = container.jobs.submit("VerifyStore", {}, owner="bench")
    started = time.perf_counter()
    assert runner.run_one()
    seconds = time.perf_counter() - started
    done = container.jobs.get(job.job_id)
    assert done.state is JobState.SUCCEEDED, done
    assert done.result["ok"], done
    return seconds, int(done.result["bytesVerified"])


def run(total_mib: int, payload_mib: int, rounds: int, directory: Path) -> dict[str, Any]:
    settings = load_settings(
        {}, data_dir=directory / "data", sweep_interval=timedelta(0), orphan_scan_interval=timedelta(0)
    )
    container = build_container(settings)
    try:
        files = fill(container, total_mib, payload_mib)
        rates: dict[str, list[float]] = {"verify": [], "plain": []}
        for _ in range(rounds):
            for name, measure in (("verify", lambda: verify(container)), ("plain", lambda: plain(files))):
                drop_cache(files)
                seconds, size = measure()
                rates[name].append(round(size / MIB / seconds, 1))
    finally:
        container.close()
    verify_rate, plain_rate = statistics.median(rates["verify"]), statistics.median(rates["plain"])
    return {
        "mib": total_mib,
        "payload_mib": payload_mib,
        "files": len(files),
        "rounds": rounds,
        "verify_mib_s": rates["verify"],
        "plain_mib_s": rates["plain"],
        "verify_median": verify_rate,
        "plain_median": plain_rate,
        "ratio": round(verify_rate / plain_rate, 3),
        "cpus": os.cpu_count(),
        "date": datetime.now(UTC).date().isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=2048, help="payload bytes to store and verify")
    parser.add_argument("--payload-mib", type=int, default=8, help="size of each payload")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", help="where to build the store (default: a temp dir under the cwd)")
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir or ".", prefix="bench-verify-") as tmp:
        result = run(args.mib, args.payload_mib, args.rounds, Path(tmp))
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
