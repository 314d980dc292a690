"""Throwaway test PKI: one CA, a server certificate and a client certificate.

Generated at test time so no private key is ever committed. The server certificate
matches what NHS's mesh-client integration suite expects from its sandbox
(CN=localhost, SAN localhost/mesh/mesh-test/127.0.0.1), and the client certificate is
signed by the same CA so a server that asks for (optional) client certificates
accepts it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_DNS_NAMES = ("localhost", "mesh", "mesh-test")
SERVER_IP_ADDRESSES = ("127.0.0.1",)
_VALIDITY = dt.timedelta(days=30)
_BACKDATE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class CertBundle:
    """Paths of the PEM files written by :func:`make_pki`."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass(frozen=True)
class _Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _make_ca() -> _Issued:
    key = _new_key()
    name = _name("Mailroom Test CA", "Mailroom Tests")
    cert = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _Issued(cert, key)


def _alt_names() -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(dns) for dns in SERVER_DNS_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IP_ADDRESSES]
    return x509.SubjectAlternativeName(names)


def _issue_leaf(ca: _Issued, common_name: str, organisation: str, *, server: bool) -> _Issued:
    key = _new_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(_name(common_name, organisation), ca.cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(_alt_names(), critical=False)
    return _Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


def make_pki(directory: Path) -> CertBundle:
    """Create a CA plus server and client certificates as PEM files in ``directory``.

    File names follow NHS mesh-client's test layout (``ca.cert.pem``, ``server.cert.pem``,
    ``server.key.pem``, ``client.cert.pem``, ``client.key.pem``) so the files can be dropped
    straight into its ``tests/`` folder.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = _make_ca()
    server = _issue_leaf(ca, "localhost", "Mailroom Test Server", server=True)
    client = _issue_leaf(ca, "localhost", "Mailroom Test Client", server=False)
    return CertBundle(
        ca_cert=_write_cert(directory / "ca.cert.pem", ca.cert),
        ca_key=_write_key(directory / "ca.key.pem", ca.key),
        server_cert=_write_cert(directory / "server.cert.pem", server.cert),
        server_key=_write_key(directory / "server.key.pem", server.key),
        client_cert=_write_cert(directory / "client.cert.pem", client.cert),
        client_key=_write_key(directory / "client.key.pem", client.key),
    )


def ssl_context(pki: CertBundle, *, client_cert: bool = False) -> ssl.SSLContext:
    """A client-side context trusting the test CA; presents the test client certificate if asked."""
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if client_cert:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context
