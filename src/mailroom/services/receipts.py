"""Signed delivery receipts: what a sender keeps to prove a recipient received a message.

A receipt is the document an AS2 gateway returns (RFC 4130's MDN): an RFC 8098 message
disposition notification (``multipart/report; report-type=disposition-notification``: a line a
person reads, and the machine-readable fields) signed as S/MIME (``multipart/signed``, a
detached CMS SignedData over the report's canonical bytes, SHA-256). Its fields name the
original message id, both mailboxes, when it was delivered, each attachment's size and SHA-256
and a ``Received-Content-MIC``:

- a message whose MESH payload is one attachment: the SHA-256 of those bytes (as AS2 computes
  its MIC over the payload);
- any other: the SHA-256 of the listing ``body:<hex>`` then ``attachment:<hex>`` per attachment
  (each line ending in CRLF), which the receipt's own fields let a verifier recompute.

The signing key and certificate come from ``receipt_key_file``/``receipt_cert_file``; without
them, an RSA 2048 key and a self-signed certificate are made once and kept in ``server_keys``,
so every server process signs with the same one.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from mailroom import __version__
from mailroom.clock import Clock
from mailroom.settings import Settings
from mailroom.storage.db import Database
from mailroom.storage.repos import server_keys

KEY_NAME = "receipt-signing"


@dataclass(frozen=True)
class ReceivedFile:
    name: str
    size: int
    sha256: str  # hex


@dataclass(frozen=True)
class ReceiptFacts:
    """What a receipt states."""

    message_id: str
    sender_id: str
    recipient_id: str
    subject: str
    delivered_at: datetime
    body_sha256: str | None  # hex; None when the message has no body
    files: Sequence[ReceivedFile]

    @property
    def mic(self) -> str:
        """``Received-Content-MIC``'s value (see the module's docstring)."""
        if self.body_sha256 is None and len(self.files) == 1:
            digest = bytes.fromhex(self.files[0].sha256)
        else:
            lines = [f"body:{self.body_sha256}\r\n"] if self.body_sha256 is not None else []
            lines += [f"attachment:{f.sha256}\r\n" for f in self.files]
            digest = hashlib.sha256("".join(lines).encode()).digest()
        return f"{base64.b64encode(digest).decode()}, sha-256"


def _field(text: str) -> str:
    """A header value with nothing that could end the header or start another."""
    return "".join(c if c.isprintable() else " " for c in text)[:998]


def report(facts: ReceiptFacts) -> bytes:
    """The unsigned ``multipart/report`` entity, canonical (CRLF line ends)."""
    boundary = f"report-{secrets.token_hex(12)}"
    when = format_datetime(facts.delivered_at.astimezone(UTC), usegmt=True)
    human = (
        f"The message {facts.message_id} from {facts.sender_id} to {facts.recipient_id} "
        f"was delivered on {when}. This is a receipt; it does not say the message was read "
        "or accepted by a person."
    )
    fields = [
        f"Reporting-UA: mailroom; Mailroom {__version__}",
        f"Original-Recipient: rfc822; {_field(facts.recipient_id)}",
        f"Final-Recipient: rfc822; {_field(facts.recipient_id)}",
        f"Original-Message-ID: <{_field(facts.message_id)}>",
        "Disposition: automatic-action/MDN-sent-automatically; processed",
        f"Received-Content-MIC: {facts.mic}",
        f"X-Mailroom-Sender: {_field(facts.sender_id)}",
        f"X-Mailroom-Subject: {quote(facts.subject, safe=' ')[:900]}",
        f"X-Mailroom-Delivered: {when}",
    ]
    if facts.body_sha256 is not None:
        fields.append(f"X-Mailroom-Body: sha-256={facts.body_sha256}")
    for number, item in enumerate(facts.files, 1):
        fields.append(
            f"X-Mailroom-Attachment: {number}; name*=UTF-8''{quote(item.name, safe='')}; "
            f"size={item.size}; sha-256={item.sha256}"
        )
    return (
        f'Content-Type: multipart/report; report-type=disposition-notification; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        f"{_field(human)}\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/disposition-notification\r\n"
        "\r\n" + "\r\n".join(fields) + "\r\n"
        f"--{boundary}--\r\n"
    ).encode("ascii", "replace")


def _self_signed(now: datetime) -> bytes:
    """A new RSA 2048 key and a 10-year self-signed certificate, as PEM (key, then certificate)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mailroom receipts")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem_key + cert.public_bytes(serialization.Encoding.PEM)


class ReceiptSigner:
    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self._settings = settings
        self._db = db
        self._clock = clock
        self._loaded: tuple[pkcs7.PKCS7PrivateKeyTypes, x509.Certificate] | None = None
        self._lock = threading.Lock()

    def _material(self) -> bytes:
        settings = self._settings
        if settings.receipt_key_file and settings.receipt_cert_file:
            return (
                Path(settings.receipt_key_file).read_bytes() + Path(settings.receipt_cert_file).read_bytes()
            )
        with self._db.write() as conn:
            now = self._clock.now()
            return server_keys.get_or_create(conn, KEY_NAME, lambda: _self_signed(now), now)

    def identity(self) -> tuple[pkcs7.PKCS7PrivateKeyTypes, x509.Certificate]:
        with self._lock:
            if self._loaded is None:
                material = self._material()
                key = serialization.load_pem_private_key(material, password=None)
                if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                    raise ValueError("the receipt signing key must be RSA or EC")
                cert = x509.load_pem_x509_certificates(material)[0]
                self._loaded = (key, cert)
            return self._loaded

    def certificate(self) -> x509.Certificate:
        return self.identity()[1]

    def build_receipt(self, facts: ReceiptFacts) -> bytes:
        """The signed receipt: a whole S/MIME entity (its headers, then its body)."""
        key, cert = self.identity()
        content = report(facts)
        signature = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(content)
            .add_signer(cert, key, hashes.SHA256())
            .sign(
                serialization.Encoding.DER,
                [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
            )
        )
        boundary = f"signed-{secrets.token_hex(12)}"
        encoded = base64.encodebytes(signature).replace(b"\n", b"\r\n")
        head = (
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; '
            f'boundary="{boundary}"\r\n'
            "\r\n"
        ).encode()
        return (
            head
            + f"--{boundary}\r\n".encode()
            + content
            + f"\r\n--{boundary}\r\n".encode()
            + b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
            + b"Content-Transfer-Encoding: base64\r\n"
            + b"Content-Disposition: attachment; filename=smime.p7s\r\n\r\n"
            + encoded
            + f"--{boundary}--\r\n".encode()
        )


def split_entity(document: bytes) -> tuple[str, bytes]:
    """(Content-Type, body) of a stored receipt, as it is served over HTTP (as AS2 returns one)."""
    head, _, body = document.partition(b"\r\n\r\n")
    for line in head.decode("ascii", "replace").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-type":
            return value.strip(), body
    return "application/octet-stream", body
