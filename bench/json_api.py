"""The JSON messaging API under the same load as the MESH face, on the same server, in one run.

Small messages (one recipient, a short body, no attachment) are written with D4Science's
``POST /2/messages/write-message`` and retrieved with MFT Gateway's routes: the inbox listed a
page at a time (``GET /message/inbox``), each message read (``GET /message/inbox/{id}``, which
marks it read) and deleted (``DELETE /message/inbox/{id}``, which acknowledges it on MESH) —
three requests per message, as MESH's list, download and acknowledge. Then one attachment
written to many recipients: the bytes the payload store gained, against the attachment's size.

Like ``loadgen``, raw HTTP/1.1 on asyncio streams: the client's cost per request stays small
and known. Each connection logs in once (``POST /authorize``) and sends its token bare in
``Authorization``, as MFT Gateway's clients do.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.loadgen import Connection, Response, Tally, Target, _timed

MIB = 1024 * 1024


class TokenConnection(Connection):
    """A keep-alive connection that authenticates with an API token instead of NHSMESH."""

    def __init__(self, target: Target, token: str = "") -> None:
        super().__init__(target)
        self.token = token

    def _head(self, method: str, path: str, mailbox: str, headers: dict[str, str], length: int) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"host: {self._host_header}", f"content-length: {length}"]
        if self.token:
            lines.append(f"authorization: {self.token}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def json(self, method: str, path: str, payload: Any = None) -> Response:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = {"content-type": "application/json"} if payload is not None else {}
        return await self.request(method, path, "", headers=headers, body=body)

    async def log_in(self, mailbox: str) -> None:
        answer = await self.json(
            "POST", "/authorize", {"username": mailbox, "password": self.target.password}
        )
        if answer.status != 200:
            raise RuntimeError(f"login {answer.status} {answer.body[:200]!r}")
        self.token = json.loads(answer.body)["apiToken"]


async def send_loop(
    target: Target, sender: str, recipients: list[str], count: int, body: str, tally: Tally
) -> None:
    conn = TokenConnection(target)
    try:
        await conn.log_in(sender)
        for n in range(count):
            message = {
                "subject": "bench",
                "body": body,
                "recipients": [{"id": recipients[n % len(recipients)]}],
            }
            response = await _timed(tally, conn.json("POST", "/2/messages/write-message", message))
            if response.status != 200:
                tally.errors.append(f"write {response.status} {response.body[:200]!r}")
                continue
            tally.messages += 1
    finally:
        await conn.close()


async def receive_loop(target: Target, mailbox: str, expect: int, size: int, tally: Tally) -> None:
    conn = TokenConnection(target)
    try:
        await conn.log_in(mailbox)
        received = 0  # this connection's own (the tally is shared by every connection of the process)
        while received < expect:
            page = await _timed(tally, conn.json("GET", "/message/inbox?pageLength=100&fetchAll=true"))
            if page.status != 200:
                tally.errors.append(f"list {page.status} {page.body[:200]!r}")
                return
            ids = [record["as2MessageId"] for record in json.loads(page.body)["messages"]]
            if not ids:
                return
            page_done = 0
            for message_id in ids:
                got = await _timed(tally, conn.json("GET", f"/message/inbox/{message_id}"))
                if got.status != 200 or len(json.loads(got.body).get("body", "")) != size:
                    tally.errors.append(f"read {got.status} {got.body[:200]!r}")
                    continue
                deleted = await _timed(tally, conn.json("DELETE", f"/message/inbox/{message_id}"))
                if deleted.status != 200:
                    tally.errors.append(f"delete {deleted.status} {deleted.body[:200]!r}")
                    continue
                tally.messages += 1
                received += 1
                page_done += 1
            if not page_done:  # a whole page failed: stop rather than list it again forever
                return
    finally:
        await conn.close()


def run_processes(kind: str, target: Target, specs: list[dict[str, Any]], processes: int) -> Tally:
    """Spread ``specs`` (one connection each) over ``processes`` worker processes."""
    processes = max(1, min(processes, len(specs)))
    jobs = [(kind, target, specs[n::processes]) for n in range(processes)]
    total = Tally()
    with get_context("fork").Pool(processes) as pool:
        for tally in pool.map(_run_worker, jobs):
            total.merge(tally)
    return total


def _run_worker(job: tuple[str, Target, list[dict[str, Any]]]) -> Tally:
    """Every spec of one process on one event loop; its own CPU."""
    kind, target, specs = job
    before = resource.getrusage(resource.RUSAGE_SELF)
    tally = Tally()
    loop = send_loop if kind == "send" else receive_loop

    async def main() -> None:
        await asyncio.gather(*(loop(target, tally=tally, **spec) for spec in specs))

    asyncio.run(main())
    after = resource.getrusage(resource.RUSAGE_SELF)
    tally.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return tally


async def fan_out(target: Target, sender: str, recipients: list[str], mib: int) -> dict[str, Any]:
    """One ``mib`` MiB attachment uploaded once and written to every one of ``recipients``."""
    conn = TokenConnection(target)
    try:
        await conn.log_in(sender)
        data = os.urandom(mib * MIB)
        started = time.perf_counter()
        uploaded = await conn.request(
            "POST",
            "/2/attachments?name=fanout.bin",
            "",
            headers={"content-type": "application/octet-stream"},
            body=data,
        )
        if uploaded.status != 200:
            raise RuntimeError(f"upload {uploaded.status} {uploaded.body[:200]!r}")
        attachment_id = json.loads(uploaded.body)["result"]
        message = {
            "subject": "fan-out",
            "body": "one attachment, many recipients",
            "recipients": [{"id": box} for box in recipients],
            "attachmentIds": [attachment_id],
        }
        written = await conn.json("POST", "/2/messages/write-message", message)
        answer = json.loads(written.body) if written.status == 200 else {}
        if written.status != 200 or answer.get("message"):  # "message" names skipped recipients
            raise RuntimeError(f"write {written.status} {written.body[:200]!r}")
        return {"seconds": round(time.perf_counter() - started, 3), "attachment_bytes": len(data)}
    finally:
        await conn.close()


def stored_bytes(payloads: Path) -> int:
    """Bytes in the filesystem payload store (the files under ``payloads/``)."""
    return sum(p.stat().st_size for p in payloads.rglob("*") if p.is_file())
