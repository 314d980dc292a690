"""The two servers under test, as real processes on loopback, and what /proc says about them.

- Mailroom: ``python -m mailroom serve`` with its default, durable settings (SQLite WAL with
  ``synchronous=FULL``, every payload fsynced before the 202), mailboxes made with the CLI.
- mesh-sandbox: NHS's ``mesh_sandbox.api:app`` under uvicorn in its own venv (``.venv-sandbox``),
  ``STORE_MODE=file`` (messages as JSON files, chunks as files) and ``AUTH_MODE=full``.

Both get the same mailboxes, password and shared key on 127.0.0.1, and, as MESH is deployed,
HTTPS with client certificates required (``ServerTls``; ``--plain-http`` for plain HTTP).
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.server import ServerProcess

from bench.loadgen import Connection, Target, Tls

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_PYTHON = Path(os.environ.get("MAILROOM_SBX_PYTHON", ROOT / ".venv-sandbox" / "bin" / "python"))
SANDBOX_LAUNCHER = ROOT / "tests" / "support" / "mesh_sandbox_launcher.py"
SHARED_KEY = "BenchKey"
PASSWORD = "password"
SENDER = "ALICE"
DEEP = "DEEP"


def workers_name(workers: int) -> str:
    """The results' name for Mailroom run with ``--workers``."""
    return f"mailroom --workers {workers}"


def recipients(count: int) -> list[str]:
    return [f"BOB{n:02d}" for n in range(count)]


def all_mailboxes(receivers: int) -> list[str]:
    return [SENDER, DEEP, *recipients(receivers)]


def fan_out_boxes(count: int) -> list[str]:
    """The fan-out message's recipients: mailboxes of their own, so what they receive never
    reaches the inboxes the small-message phases empty."""
    return [f"FAN{n:03d}" for n in range(count)]


def proc_status(pid: int, name: str) -> int:
    """A ``kB`` field of /proc/<pid>/status, in bytes (0 if the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a server's worker processes)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found += process_tree(int(child))
    return found


@dataclass
class RssSampler:
    """Peak VmRSS of a process, sampled every 20 ms, plus the kernel's VmHWM at the end."""

    pid: int
    peak: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        with contextlib.suppress(OSError):  # reset the high-water mark: VmHWM covers just this block
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        started = time.monotonic()

        def loop() -> None:
            while not self._stop.is_set():
                rss = proc_status(self.pid, "VmRSS")
                self.peak = max(self.peak, rss)
                self.samples.append((time.monotonic() - started, rss))
                self._stop.wait(0.02)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, proc_status(self.pid, "VmHWM"))


@dataclass(frozen=True)
class ServerTls:
    """The test PKI's files: the server's certificate, and the CA that also signed the client's."""

    ca: Path
    cert: Path
    key: Path
    client: Tls

    @classmethod
    def made_in(cls, directory: Path) -> ServerTls:
        from tests.support.certs import make_pki

        pki = make_pki(directory)
        client = Tls(str(pki.ca_cert), str(pki.client_cert), str(pki.client_key))
        return cls(pki.ca_cert, pki.server_cert, pki.server_key, client)


class Server(abc.ABC):
    """Common face of every server under test: start, stop, pid, target, CPU and memory."""

    name = ""
    #: Set by the run for every server: mutual TLS, or None for plain HTTP.
    tls: ServerTls | None = None

    def __init__(self, root: Path, port: int, receivers: int) -> None:
        self.root = root
        self.port = port
        self.receivers = receivers
        self.process: ServerProcess | None = None

    @property
    def target(self) -> Target:
        return Target(
            "127.0.0.1", self.port, SHARED_KEY, PASSWORD, None if self.tls is None else self.tls.client
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        assert self.process.pid is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        """CPU used so far by the server's processes (its workers included; a worker that has
        exited is no longer counted, and none does while a phase runs)."""
        return sum(proc_cpu_seconds(pid) for pid in process_tree(self.pid))

    def rss(self) -> int:
        """Resident memory of the server's processes, summed."""
        return sum(proc_status(pid, "VmRSS") for pid in process_tree(self.pid))

    @abc.abstractmethod
    def prepare(self) -> None:
        """Make the server's data folder, mailboxes and settings."""

    @abc.abstractmethod
    def argv_env(self) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that start the server."""

    def start(self) -> float:
        """Start and wait until healthy; returns the seconds that took."""
        argv, env = self.argv_env()
        self.process = ServerProcess(
            argv,
            log_path=self.root / "server.log",
            port=self.port,
            env=env,
            scheme="http" if self.tls is None else "https",
            ca_cert=None if self.tls is None else self.tls.ca,
            client_cert=None if self.tls is None else (Path(self.tls.client.cert), Path(self.tls.client.key)),
            startup_timeout=600,
        )
        started = time.perf_counter()
        self.process.start()
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


class MeshServer(Server):
    """A server with MESH mailboxes: one whose inbox can be seeded deep."""

    @abc.abstractmethod
    def seed_deep_inbox(self, total: int) -> float:
        """Make the DEEP inbox hold ``total`` messages (server stopped); returns seconds."""


async def send_template(target: Target, recipient: str) -> str:
    """One real message through HTTP: the row/file every seeded copy is cloned from."""
    conn = Connection(target)
    response = await conn.request(
        "POST",
        f"/messageexchange/{SENDER}/outbox",
        SENDER,
        headers={"mex-to": recipient, "mex-workflowid": "BENCH_DEEP", "content-type": "text/plain"},
        body=b"deep inbox message",
    )
    await conn.close()
    assert response.status == 202, response.body
    reply = json.loads(response.body)
    message_id: str = reply.get("message_id") or reply["messageID"]
    return message_id


def clone_ids(total: int, start: datetime, *, mesh_ids: bool = True) -> list[tuple[str, datetime]]:
    """Ids with strictly increasing timestamps, oldest first: MESH-shaped, or uuid hex as
    mesh-sandbox makes them."""
    out = []
    for n in range(total):
        at = start + timedelta(microseconds=n * 100)
        message_id = f"{at:%Y%m%d%H%M%S%f}_{n % 0xFFFFFF:06X}" if mesh_ids else uuid.uuid4().hex.upper()
        out.append((message_id, at))
    return out


class Mailroom(MeshServer):
    name = "mailroom"

    def __init__(self, root: Path, port: int, receivers: int, workers: int = 1, fan_out: int = 0) -> None:
        super().__init__(root, port, receivers)
        self.workers = workers
        self.fan_out = fan_out  # mailboxes made for the JSON phase's fan-out (fan_out_boxes)
        if workers > 1:
            self.name = workers_name(workers)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILROOM_")}
        return {**env, "MAILROOM_SHARED_KEY": SHARED_KEY, "MAILROOM_LOG_LEVEL": "warning"}

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        boxes = self.root / "mailboxes.jsonl"
        boxes.write_text(
            "".join(
                json.dumps({"mailbox_id": box, "password": PASSWORD, "ods_code": "X26"}) + "\n"
                for box in [*all_mailboxes(self.receivers), *fan_out_boxes(self.fan_out)]
            )
        )
        command = [sys.executable, "-m", "mailroom", "mailbox", "import", str(boxes)]
        command += ["--data-dir", str(self.data_dir)]
        subprocess.run(command, env=self.env(), check=True, capture_output=True, timeout=120)

    def argv_env(self) -> tuple[list[str], dict[str, str]]:
        argv = [sys.executable, "-m", "mailroom", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--workers", str(self.workers)]
        if self.tls is not None:
            argv += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
            argv += ["--tls-client-ca", str(self.tls.ca), "--require-client-cert"]
        return [*argv, "--data-dir", str(self.data_dir)], self.env()

    def seed_deep_inbox(self, total: int) -> float:
        """Clone one real message's rows (messages, chunks, events) with SQL, in one transaction.

        Every copy points at the template's payload file, so copies download too.
        """
        import asyncio

        started = time.perf_counter()
        db = sqlite3.connect(self.data_dir / "mailroom.db")
        have = db.execute("SELECT count(*) FROM messages WHERE recipient_id = ?", (DEEP,)).fetchone()[0]
        if have == 0:
            self.start()
            asyncio.run(send_template(self.target, DEEP))
            self.stop()
            have = 1
        db.row_factory = sqlite3.Row
        template = db.execute("SELECT * FROM messages WHERE recipient_id = ? LIMIT 1", (DEEP,)).fetchone()
        chunk = db.execute("SELECT * FROM chunks WHERE message_id = ?", (template["message_id"],)).fetchone()
        events = db.execute(
            "SELECT * FROM message_events WHERE message_id = ?", (template["message_id"],)
        ).fetchall()
        when = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
        fmt = "%Y-%m-%d %H:%M:%S.%f"
        msg_rows, chunk_rows, event_rows = [], [], []
        for message_id, at in clone_ids(total - have, when - timedelta(seconds=have)):
            stamp = at.strftime(fmt)
            row = {**dict(template), "message_id": message_id}
            row.update(created_at=stamp, status_at=stamp, accepted_at=stamp)
            msg_rows.append(row)
            chunk_rows.append({**dict(chunk), "message_id": message_id, "stored_at": stamp})
            for event in events:
                event_row = {**dict(event), "message_id": message_id, "created_at": stamp}
                event_row.pop("id")
                event_rows.append(event_row)
        with db:
            for table, rows in (
                ("messages", msg_rows),
                ("chunks", chunk_rows),
                ("message_events", event_rows),
            ):
                if rows:
                    names = list(rows[0])
                    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
                    db.executemany(sql, [tuple(r[n] for n in names) for r in rows])
        db.close()
        return time.perf_counter() - started


class MeshSandbox(MeshServer):
    name = "mesh-sandbox"

    @property
    def store_dir(self) -> Path:
        return self.root / "store"

    def prepare(self) -> None:
        if not SANDBOX_PYTHON.exists():
            raise SystemExit(f"mesh-sandbox not found at {SANDBOX_PYTHON}: run scripts/install")
        self.root.mkdir(parents=True, exist_ok=True)
        self.store_dir.mkdir(exist_ok=True)
        rows = [
            {"mailbox_id": box, "mailbox_name": box, "password": PASSWORD, "ods_code": "X26"}
            for box in all_mailboxes(self.receivers)
        ]
        (self.root / "mailboxes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (self.root / "workflows.jsonl").write_text("")

    def argv_env(self) -> tuple[list[str], dict[str, str]]:
        argv = [str(SANDBOX_PYTHON), str(SANDBOX_LAUNCHER), "--port", str(self.port)]
        if self.tls is not None:
            argv += ["--certfile", str(self.tls.cert), "--keyfile", str(self.tls.key)]
            argv += ["--ca-certs", str(self.tls.ca), "--require-client-cert"]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "STORE_MODE": "file",
            "MAILBOXES_DATA_DIR": str(self.store_dir),
            "AUTH_MODE": "full",
            "SHARED_KEY": SHARED_KEY,
        }
        return [*argv, "--data-dir", str(self.root)], env

    def seed_deep_inbox(self, total: int) -> float:
        """Copy one real message's JSON file (as the file store wrote it) with new ids and times."""
        import asyncio

        started = time.perf_counter()
        inbox = self.store_dir / DEEP / "in"
        existing = sorted(inbox.glob("*.json")) if inbox.exists() else []
        if not existing:
            self.start()
            message_id = asyncio.run(send_template(self.target, DEEP))
            self.stop()
            existing = [inbox / f"{message_id}.json"]
        template_path = existing[0]
        template = json.loads(template_path.read_text())
        stamps = {template["created_timestamp"], *(e["timestamp"] for e in template.get("events") or [])}
        text = template_path.read_text().replace(template["message_id"], "{ID}")
        for stamp in stamps:
            text = text.replace(f'"{stamp}"', '"{AT}"')
        chunk_dir = inbox / template_path.stem
        chunks = [(p.name, p.read_bytes()) for p in chunk_dir.iterdir()] if chunk_dir.is_dir() else []
        when = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
        for message_id, at in clone_ids(
            total - len(existing), when - timedelta(seconds=len(existing)), mesh_ids=False
        ):
            body = text.replace("{ID}", message_id).replace("{AT}", at.isoformat())
            (inbox / f"{message_id}.json").write_text(body)
            if chunks:  # the same bytes, so copies download too
                (inbox / message_id).mkdir()
                for name, data in chunks:
                    (inbox / message_id / name).write_bytes(data)
        return time.perf_counter() - started


class Floor(Server):
    """bench/floor.py: the large message's unavoidable work and nothing else (not a MESH server)."""

    name = "pipeline floor"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def argv_env(self) -> tuple[list[str], dict[str, str]]:
        argv = [sys.executable, "-m", "bench.floor", str(self.port), str(self.root / "payloads")]
        if self.tls is not None:
            argv += [str(self.tls.ca), str(self.tls.cert), str(self.tls.key)]
        return argv, {**os.environ, "PYTHONPATH": str(ROOT)}
