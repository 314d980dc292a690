"""HTTPS and mutual TLS with certificates generated at test time.

- ``--require-client-cert``: no certificate, or one from another CA, is refused at the TLS
  layer over TLS 1.2 and 1.3 (no HTTP byte back, no request reaches the app); the CA-signed
  certificate works for a whole send/download.
- without it the certificate is optional (as mesh-client's test reset call needs), but a
  certificate that is presented must still verify.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import StartServer
from tests.e2e.harness import Mailroom, download, send, wait_for
from tests.support.certs import CertBundle, make_pki

TLS_VERSIONS = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
REFUSED = {"TLSv1_2": "refused", "TLSv1_3": "refused"}


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> CertBundle:
    """A client certificate from a CA the server has never heard of."""
    return make_pki(tmp_path_factory.mktemp("stranger-pki"))


def list_inbox(server: Mailroom, cert: tuple[Path, Path] | None) -> int:
    return server.client("BOB", cert=cert).get("/messageexchange/BOB/inbox").status_code


def raw_tls(server: Mailroom, cert: tuple[Path, Path] | None, version: ssl.TLSVersion) -> str:
    """ "http" if a raw TLS client gets an HTTP answer to a ping, else "refused".

    Python's TLS server (asyncio and uvloop alike) closes a connection whose certificate fails
    verification without sending an alert. With TLS 1.2 the client sees that inside the
    handshake; with TLS 1.3 its side of the handshake is already done, so it sees the close
    before any HTTP byte.
    """
    assert server.pki is not None
    context = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    context.minimum_version = context.maximum_version = version
    if cert:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    try:
        with (
            socket.create_connection((server.process.host, server.process.port), timeout=10) as sock,
            context.wrap_socket(sock, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            answer = tls.recv(1024)
    except (ssl.SSLError, ConnectionError):
        return "refused"
    return "http" if answer.startswith(b"HTTP/1.1 200") else "refused"


def outcomes(server: Mailroom, cert: tuple[Path, Path] | None) -> dict[str, str]:
    """Per TLS version; also checks that refused connections never reached HTTP (no access-log line)."""
    requests_before = server.process.log_tail(100_000).count("HTTP/1.1")
    found = {version.name: raw_tls(server, cert, version) for version in TLS_VERSIONS}
    answered = list(found.values()).count("http")
    wait_for(lambda: server.process.log_tail(100_000).count("HTTP/1.1") == requests_before + answered,
             what="access log")  # fmt: skip
    return found


def test_mutual_tls_required(start_server: StartServer, pki: CertBundle, stranger: CertBundle) -> None:
    server = start_server(pki=pki, require_client_cert=True)
    assert server.process.base_url.startswith("https://")

    assert list_inbox(server, (pki.client_cert, pki.client_key)) == 200
    alice, bob = server.client("ALICE"), server.client("BOB")
    message_id = send(alice, b"over mutual TLS")
    assert download(bob, message_id)[0] == 200

    assert outcomes(server, (pki.client_cert, pki.client_key)) == {"TLSv1_2": "http", "TLSv1_3": "http"}
    assert outcomes(server, None) == REFUSED
    assert outcomes(server, (stranger.client_cert, stranger.client_key)) == REFUSED
    with pytest.raises(httpx.TransportError):
        list_inbox(server, None)


def test_client_certificate_optional(
    start_server: StartServer, pki: CertBundle, stranger: CertBundle
) -> None:
    server = start_server(pki=pki)

    assert list_inbox(server, None) == 200
    assert list_inbox(server, (pki.client_cert, pki.client_key)) == 200
    assert outcomes(server, None) == {"TLSv1_2": "http", "TLSv1_3": "http"}
    assert outcomes(server, (stranger.client_cert, stranger.client_key)) == REFUSED
    # plain HTTP to the TLS port gets no MESH answer
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{server.process.host}:{server.process.port}/_ping", timeout=5)
