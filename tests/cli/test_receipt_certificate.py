"""``mailroom receipt-certificate`` prints the certificate receipts are signed with."""

from __future__ import annotations

from click.testing import CliRunner
from cryptography import x509

from mailroom.cli.main import cli


def test_the_receipt_certificate_is_printed_and_stays_the_same(tmp_path):
    runner = CliRunner()
    first = runner.invoke(cli, ["receipt-certificate", "--data-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    certificate = x509.load_pem_x509_certificate(first.output.encode())
    assert certificate.subject.rfc4514_string() == "CN=Mailroom receipts"
    again = runner.invoke(cli, ["receipt-certificate", "--data-dir", str(tmp_path)])
    assert again.output == first.output
