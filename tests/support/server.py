"""Run an HTTP(S) server as a real subprocess for end-to-end and contract tests.

The server runs in its own session (process group), writes stdout and stderr to a log
file, and is considered up once ``GET {base_url}{health_path}`` answers 200, checked
against the test CA when the scheme is https. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

PORT_PLACEHOLDER = "{port}"
DEFAULT_STARTUP_TIMEOUT = 20.0
DEFAULT_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.1
_LOG_TAIL_LINES = 40


class ServerStartError(RuntimeError):
    """The server process exited or did not become healthy in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a currently unused TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def read_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """Last ``lines`` lines of a text file, or an empty string if it does not exist."""
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess:
    """A server subprocess on a loopback port, with start/stop/kill/restart.

    ``argv`` items may contain ``{port}``, replaced by the chosen port (a free one unless
    ``port`` is given). The health probe verifies https against ``ca_cert`` and presents
    ``client_cert`` (cert, key) if given. Use as a context manager or call :meth:`start`
    and :meth:`stop` yourself.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        scheme: str = "https",
        ca_cert: Path | None = None,
        client_cert: tuple[Path, Path] | None = None,
        health_path: str = "/_ping",
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.argv = [arg.replace(PORT_PLACEHOLDER, str(self.port)) for arg in argv]
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.scheme = scheme
        self.ca_cert = ca_cert
        self.client_cert = client_cert
        self.health_path = health_path
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return read_tail(self.log_path, lines)

    def start(self) -> None:
        """Spawn the process and block until it is healthy (or raise ServerStartError)."""
        if self.running:
            raise RuntimeError(f"server already running (pid {self.pid})")
        if port_in_use(self.port, self.host):
            raise ServerStartError(f"{self.host}:{self.port} is already in use by another process")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        """SIGTERM the process group; SIGKILL it if it has not exited within ``timeout``."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                process.wait(timeout=timeout)
        self._process = None
        return process.returncode

    def kill(self) -> int | None:
        """SIGKILL the process group at once (crash simulation) and reap it.

        Returns once nothing listens on the port any more: worker processes (``--workers``) are
        not this process's children, and one still dying would hold the port for a restart."""
        process = self._process
        if process is None:
            return None
        self._signal_group(signal.SIGKILL)
        process.wait(timeout=DEFAULT_STOP_TIMEOUT)
        self._process = None
        deadline = time.monotonic() + DEFAULT_STOP_TIMEOUT
        while port_in_use(self.port, self.host) and time.monotonic() < deadline:
            time.sleep(0.02)
        return process.returncode

    def restart(self) -> None:
        """Stop gracefully (if running) and start again on the same port."""
        self.stop()
        self.start()

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, sig)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.scheme != "https":
            return None
        context = ssl.create_default_context(cafile=str(self.ca_cert) if self.ca_cert else None)
        if self.client_cert:
            cert, key = self.client_cert
            context.load_cert_chain(str(cert), str(key))
        return context

    def _probe(self, context: ssl.SSLContext | None) -> str | None:
        """None if healthy, otherwise a short reason."""
        url = f"{self.base_url}{self.health_path}"
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                status: int = response.status
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (OSError, ssl.SSLError) as exc:
            return repr(exc)
        return None if status == 200 else f"HTTP {status}"

    def _wait_healthy(self) -> None:
        assert self._process is not None
        context = self._ssl_context()
        deadline = time.monotonic() + self.startup_timeout
        reason = "not probed yet"
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise ServerStartError(self._failure(f"exited with code {code} during startup"))
            reason = self._probe(context) or ""
            if not reason:
                return
            time.sleep(_POLL_INTERVAL)
        raise ServerStartError(
            self._failure(f"not healthy after {self.startup_timeout:.0f}s (last probe: {reason})")
        )

    def _failure(self, what: str) -> str:
        return (
            f"server {what}\n  argv: {self.argv}\n  url: {self.base_url}{self.health_path}\n"
            f"  log: {self.log_path}\n--- log tail ---\n{self.log_tail()}"
        )

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
