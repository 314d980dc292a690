"""Mailroom as a real subprocess on loopback, plus the helpers end-to-end tests share.

``Mailroom`` wraps a :class:`ServerProcess` started the way operators start it
(``python -m mailroom serve``) on a data directory prepared with the CLI. Clients are plain
httpx clients that sign every request with a fresh ``NHSMESH`` token. Nothing here imports
server code except the token builder, so the tests see the server only through HTTP and the
files it leaves on disk.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from tests.support.certs import CertBundle
from tests.support.server import ServerProcess

from mailroom.auth.mesh_hmac import build_header

SHARED_KEY = "TestKey"
PASSWORD = "password"
V2 = "application/vnd.mesh.v2+json"
MAILBOXES = ("ALICE", "BOB")
WORKFLOW = "E2E_WORKFLOW"
MIB = 1024 * 1024

#: Every path the server may create under its data directory, relative to it.
SERVER_PATHS = re.compile(
    r"^((mailroom|tokens)\.db(-wal|-shm|-journal|\.lock)?"
    r"|payloads|payloads/objects|payloads/tmp"
    r"|payloads/tmp/upload-[A-Za-z0-9_]+"
    r"|payloads/objects/\d{8}"
    r"|payloads/objects/\d{8}/\d{20}_[0-9A-F]{6}"
    r"|payloads/objects/\d{8}/\d{20}_[0-9A-F]{6}/\d{1,6}-[0-9a-f]{16})$"
)


class MeshAuth(httpx.Auth):
    """A fresh single-use ``NHSMESH`` token on every request (as real clients do)."""

    def __init__(self, mailbox: str, password: str = PASSWORD) -> None:
        self.mailbox = mailbox
        self.password = password

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["authorization"] = build_header(
            self.mailbox, self.password, SHARED_KEY, nonce=str(uuid.uuid4()), at=datetime.now(UTC)
        )
        yield request


def tls_context(ca_cert: Path, client_cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """Trust ``ca_cert``; present ``client_cert`` (cert, key) if given."""
    context = ssl.create_default_context(cafile=str(ca_cert))
    if client_cert:
        context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    return context


def make_data_dir(target: Path) -> Path:
    """A data directory with mailboxes ALICE and BOB, made with the operator CLI."""
    target.parent.mkdir(parents=True, exist_ok=True)
    mailboxes = target.parent / "mailboxes.jsonl"
    workflows = target.parent / "workflows.jsonl"
    mailboxes.write_text(
        "".join(
            f'{{"mailbox_id": "{box}", "password": "{PASSWORD}", "ods_code": "X26"}}\n' for box in MAILBOXES
        )
    )
    workflows.write_text(f'{{"workflow_id": "{WORKFLOW}", "senders": ["ALICE"], "receivers": ["BOB"]}}\n')
    for kind, path in (("mailbox", mailboxes), ("workflow", workflows)):
        command = [sys.executable, "-m", "mailroom", kind, "import", str(path), "--data-dir", str(target)]
        done = subprocess.run(command, env=server_env({}), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return target


def server_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The test runner's environment without stray ``MAILROOM_*`` settings, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MAILROOM_")}
    return {**env, "MAILROOM_SHARED_KEY": SHARED_KEY, **extra}


@dataclass
class Mailroom:
    """A running (or killed) Mailroom server process and its data directory."""

    process: ServerProcess
    data_dir: Path
    pki: CertBundle | None = None
    client_cert: tuple[Path, Path] | None = None
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.process.pid is not None, "server is not running"
        return self.process.pid

    @property
    def objects(self) -> Path:
        return self.data_dir / "payloads" / "objects"

    @property
    def uploads(self) -> Path:
        return self.data_dir / "payloads" / "tmp"

    def client(
        self,
        mailbox: str,
        *,
        v2: bool = True,
        timeout: float = 30.0,
        cert: tuple[Path, Path] | bool | None = True,
    ) -> httpx.Client:
        """A client for ``mailbox``; ``cert=True`` presents the server's client certificate (if TLS)."""
        headers = {"accept": V2} if v2 else {}
        chosen = self.client_cert if cert is True else cert or None
        verify: ssl.SSLContext | bool = tls_context(self.pki.ca_cert, chosen) if self.pki else True
        client = httpx.Client(
            base_url=self.process.base_url,
            auth=MeshAuth(mailbox),
            headers=headers,
            timeout=timeout,
            verify=verify,
        )
        self._clients.append(client)
        return client

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush, no goodbye (clients are closed only afterwards)."""
        self.process.kill()
        self.close_clients()

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.close_clients()
        self.process.stop()


def start_mailroom(
    root: Path,
    template: Path,
    *,
    env: Mapping[str, str] | None = None,
    pki: CertBundle | None = None,
    require_client_cert: bool = False,
) -> Mailroom:
    """Copy ``template`` into ``root/data`` and serve it (HTTPS with mutual TLS options if ``pki``)."""
    data_dir = root / "data"
    shutil.copytree(template, data_dir)
    argv = [
        sys.executable, "-m", "mailroom", "serve", "--host", "127.0.0.1", "--port", "{port}",
        "--data-dir", str(data_dir), "--sandbox",
    ]  # fmt: skip
    if pki:
        argv += ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
        argv += ["--tls-client-ca", str(pki.ca_cert)]
        if require_client_cert:
            argv.append("--require-client-cert")
    client_cert = (pki.client_cert, pki.client_key) if pki else None
    # no background sweep: tests look at leftovers (temp uploads, orphans) exactly as a crash left them
    process = ServerProcess(
        argv,
        log_path=root / "server.log",
        env=server_env({"MAILROOM_SWEEP_INTERVAL": "0", **(env or {})}),
        scheme="https" if pki else "http",
        ca_cert=pki.ca_cert if pki else None,
        client_cert=client_cert,
    )
    server = Mailroom(process, data_dir, pki, client_cert)
    server.start()
    return server


# -- payloads ----------------------------------------------------------------------------------


class Payload:
    """Deterministic pseudo-random bytes, produced piece by piece so no test holds them whole.

    ``compressible`` pieces are runs of one byte value (gzip shrinks them ~1000 times).
    """

    def __init__(self, size: int, seed: int, piece: int = MIB, *, compressible: bool = False) -> None:
        self.size = size
        self.seed = seed
        self.piece = piece
        self.compressible = compressible
        digest = hashlib.sha256()
        for part in self.pieces():
            digest.update(part)
        self.sha256 = digest.hexdigest()

    def pieces(self) -> Iterator[bytes]:
        rng = random.Random(self.seed)
        left = self.size
        while left:
            size = min(self.piece, left)
            left -= size
            yield bytes([rng.randrange(256)]) * size if self.compressible else rng.randbytes(size)

    def bytes(self) -> bytes:
        return b"".join(self.pieces())


def sha256_of(response: httpx.Response) -> tuple[str, int]:
    """Digest and length of a streamed response body, read in pieces."""
    digest = hashlib.sha256()
    size = 0
    for piece in response.iter_raw(MIB):
        digest.update(piece)
        size += len(piece)
    return digest.hexdigest(), size


def blocking_body(first: Iterator[bytes], release: threading.Event) -> Iterator[bytes]:
    """Yields ``first``, then waits for ``release`` before ending: a transfer stuck mid-body."""
    yield from first
    release.wait(timeout=60)
    yield b"x" * 1024


# -- the server's view from the outside --------------------------------------------------------


def send(client: httpx.Client, body: object, *, chunks: str = "1:1", **headers: str) -> str:
    """POST a message (or chunk 1); returns the message id."""
    extra = {"mex-to": "BOB", "mex-workflowid": WORKFLOW, "mex-chunk-range": chunks}
    extra.update({name.replace("_", "-"): value for name, value in headers.items()})
    response = client.post("/messageexchange/ALICE/outbox", content=body, headers=extra)  # type: ignore[arg-type]
    assert response.status_code == 202, response.text
    message_id: str = response.json()["message_id"]
    return message_id


def send_chunk(
    client: httpx.Client, message_id: str, number: int, total: int, body: object
) -> httpx.Response:
    return client.post(
        f"/messageexchange/ALICE/outbox/{message_id}/{number}",
        content=body,  # type: ignore[arg-type]
        headers={"mex-chunk-range": f"{number}:{total}"},
    )


def inbox(client: httpx.Client) -> list[str]:
    response = client.get("/messageexchange/BOB/inbox", params={"max_results": 5000})
    assert response.status_code == 200, response.text
    messages: list[str] = response.json()["messages"]
    return messages


def download(client: httpx.Client, message_id: str, chunk: int = 1) -> tuple[int, str, int]:
    """(status, sha256, length) of one downloaded chunk, streamed."""
    with client.stream("GET", f"/messageexchange/BOB/inbox/{message_id}/{chunk}") as response:
        if response.status_code not in (200, 206):
            response.read()
            return response.status_code, "", 0
        digest, size = sha256_of(response)
        return response.status_code, digest, size


def download_message(client: httpx.Client, message_id: str) -> list[tuple[int, str, int]]:
    """(status, sha256, length) of every chunk, following ``Mex-Total-Chunks`` of chunk 1."""
    head = client.head(f"/messageexchange/BOB/inbox/{message_id}")
    if head.status_code != 200:
        return [(head.status_code, "", 0)]
    total = int(head.headers["mex-total-chunks"])
    return [download(client, message_id, number) for number in range(1, total + 1)]


def expected(parts: list[Payload]) -> list[tuple[int, str, int]]:
    """What :func:`download_message` gives for a message sent as ``parts``."""
    last = len(parts)
    return [(200 if number == last else 206, part.sha256, part.size) for number, part in enumerate(parts, 1)]


def stored_chunks(data_dir: Path) -> dict[str, dict[int, tuple[str, int, str, bytes | None]]]:
    """{message_id: {chunk_no: (payload_key, size, sha256, data)}} read straight from the
    database (``data``: the bytes of a small chunk kept in its row, whose key is "")."""
    connection = sqlite3.connect(f"file:{data_dir / 'mailroom.db'}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT message_id, chunk_no, payload_key, size, sha256, data FROM chunks")
        found: dict[str, dict[int, tuple[str, int, str, bytes | None]]] = {}
        for message_id, chunk_no, key, size, digest, data in rows:
            found.setdefault(message_id, {})[chunk_no] = (key, size, digest, data)
        return found
    finally:
        connection.close()


def assert_store_consistent(data_dir: Path, *, unrecorded_allowed: int = 0) -> None:
    """Every recorded chunk is on disk (or in its row) whole (size and sha256 match).

    Payload files no row points to are never served (downloads go through chunk rows); they
    are what a kill between "file renamed into place" and "row committed" leaves, so callers
    allow at most one per upload that was in flight when the server died.
    """
    objects = data_dir / "payloads" / "objects"
    recorded = set()
    for message_id, chunk_rows in stored_chunks(data_dir).items():
        for key, size, digest, data in chunk_rows.values():
            if not key:  # kept in its row, durable with the commit that recorded it
                assert data is not None, f"recorded chunk of {message_id} has neither file nor data"
                assert len(data) == size, f"torn chunk of {message_id} in its row"
                assert hashlib.sha256(data).hexdigest() == digest, f"corrupt chunk of {message_id} in its row"
                continue
            path = objects / message_id[:8] / key
            assert path.is_file(), f"recorded chunk {key} has no payload file"
            assert path.stat().st_size == size, f"torn payload {key}"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"corrupt payload {key}"
            recorded.add(path)
    unrecorded = {path for path in objects.rglob("*") if path.is_file()} - recorded
    assert len(unrecorded) <= unrecorded_allowed, f"payload files no row points to: {sorted(unrecorded)}"


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def upload_in_progress(server: Mailroom, at_least: int) -> Callable[[], bool]:
    """True once some temp upload file under ``payloads/tmp`` has at least ``at_least`` bytes."""

    def check() -> bool:
        sizes = [path.stat().st_size for path in server.uploads.iterdir()] if server.uploads.exists() else []
        return any(size >= at_least for size in sizes)

    return check


class PeakRss:
    """Peak resident memory of a process while the block runs, in bytes.

    Resets the kernel's high-water mark (``clear_refs`` 5) when allowed and also samples
    ``VmRSS`` every 5 ms, so a short spike is caught either way.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._hwm_reset = False

    def _status(self, name: str) -> int:
        text = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
        assert match, f"no {name} in /proc/{self.pid}/status"
        return int(match.group(1)) * 1024

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._status("VmRSS"))
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self._hwm_reset = True
        except OSError:
            self._hwm_reset = False
        self.baseline = self.peak = self._status("VmRSS")
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._hwm_reset:
            self.peak = max(self.peak, self._status("VmHWM"))

    @property
    def growth(self) -> int:
        return self.peak - self.baseline
