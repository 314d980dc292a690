"""Fast self-tests of the contract harness (certs and ServerProcess), using a stdlib server."""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import ssl
import sys
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from tests.support.certs import CertBundle
from tests.support.server import ServerProcess, ServerStartError

PING_SERVER = Path(__file__).resolve().parent.parent / "support" / "ping_server.py"


def _ping_process(pki: CertBundle, tmp_path: Path, *, require_client_cert: bool = False) -> ServerProcess:
    argv = [sys.executable, str(PING_SERVER), "--port", "{port}"]
    argv += ["--certfile", str(pki.server_cert), "--keyfile", str(pki.server_key)]
    if require_client_cert:
        argv += ["--client-ca", str(pki.ca_cert)]
    return ServerProcess(
        argv,
        log_path=tmp_path / "ping.log",
        ca_cert=pki.ca_cert,
        client_cert=(pki.client_cert, pki.client_key) if require_client_cert else None,
    )


def _get_json(url: str, pki: CertBundle) -> dict[str, str]:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    with urllib.request.urlopen(url, context=context, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_server_certificate_names(pki: CertBundle) -> None:
    cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "mesh", "mesh-test"}
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    client = x509.load_pem_x509_certificate(pki.client_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    client.verify_directly_issued_by(ca)


def test_start_verifies_tls_for_ip_and_localhost(pki: CertBundle, tmp_path: Path) -> None:
    with _ping_process(pki, tmp_path) as server:
        assert server.base_url == f"https://127.0.0.1:{server.port}"
        assert _get_json(f"{server.base_url}/_ping", pki)["status"] == "running"
        assert _get_json(f"https://localhost:{server.port}/_ping", pki)["outcome"] == "Yes"
    assert not server.running


def test_client_certificate_is_accepted_by_the_ca(pki: CertBundle, tmp_path: Path) -> None:
    with _ping_process(pki, tmp_path, require_client_cert=True) as server:
        assert server.running


def test_stop_is_graceful(pki: CertBundle, tmp_path: Path) -> None:
    server = _ping_process(pki, tmp_path)
    server.start()
    assert server.stop() == 0
    assert f"got signal {signal.SIGTERM.value}" in server.log_tail()


def test_kill_then_restart_on_same_port(pki: CertBundle, tmp_path: Path) -> None:
    server = _ping_process(pki, tmp_path)
    server.start()
    port, first_pid = server.port, server.pid
    try:
        assert server.kill() == -signal.SIGKILL
        assert not server.running
        server.restart()
        assert server.port == port
        assert server.pid != first_pid
        assert _get_json(f"{server.base_url}/_ping", pki)["status"] == "running"
    finally:
        server.stop()


def test_startup_crash_reports_log_tail(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "print('boom: bad config', flush=True); raise SystemExit(3)"]
    server = ServerProcess(argv, log_path=tmp_path / "crash.log", scheme="http")
    with pytest.raises(ServerStartError, match="exited with code 3") as info:
        server.start()
    assert "boom: bad config" in str(info.value)
    assert not server.running


def test_startup_timeout_is_bounded_and_cleans_up(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; print('hanging', flush=True); time.sleep(60)"]
    server = ServerProcess(argv, log_path=tmp_path / "hang.log", scheme="http", startup_timeout=1.0)
    with pytest.raises(ServerStartError, match="not healthy after 1s") as info:
        server.start()
    assert "hanging" in str(info.value)
    assert not server.running


def test_refuses_a_port_already_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = ServerProcess([sys.executable, "-c", "pass"], log_path=tmp_path / "x.log", port=port)
        with pytest.raises(ServerStartError, match="already in use"):
            server.start()
