"""Settings and connection failures a new user meets: missing settings, a server that is not
running, https to a plain-HTTP server (and the reverse). Each message says what to check."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.support.server import free_port

from mailroom.cli.main import cli
from mailroom.client import ConfigError, MeshClient, MeshTLSError, MeshTransportError, load_config

from .conftest import FAST_RETRY, PASSWORD, SHARED_KEY, Target

REQUIRED = ("url", "mailbox", "password", "shared_key")


def client_env(tmp_path: Path, **values: str) -> dict[str, str | None]:
    """A clean environment for ``mailroom client``: no MESH_* from the caller, no profile file."""
    names = ("URL", "MAILBOX", "PASSWORD", "SHARED_KEY", "CERT", "KEY", "CA", "PROFILE", "CHUNK_SIZE")
    env: dict[str, str | None] = {f"MESH_{name}": None for name in names}
    env.update({"MESH_CONFIG": str(tmp_path / "none.toml"), "MESH_JOURNAL_DIR": str(tmp_path / "journal")})
    env.update({f"MESH_{name.upper()}": value for name, value in values.items()})
    return env


def test_missing_settings_are_named_with_their_variables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={}, config_file=tmp_path / "none.toml", mailbox="ALICE")
    assert caught.value.missing == ("url", "password", "shared_key")
    assert str(caught.value) == (
        "missing connection settings: url (MESH_URL), password (MESH_PASSWORD), shared_key (MESH_SHARED_KEY)"
    )


def test_cli_without_settings_is_a_usage_error_naming_options_and_variables(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["client", "inbox"], env=client_env(tmp_path))
    assert result.exit_code == 2, result.output
    for option, variable in (
        ("--url", "MESH_URL"),
        ("--mailbox", "MESH_MAILBOX"),
        ("--password", "MESH_PASSWORD"),
        ("--shared-key", "MESH_SHARED_KEY"),
    ):
        assert f"{option} or ${variable}" in result.output
    assert str(tmp_path / "none.toml") in result.output, "where a profile would be read from"
    assert "__init__" not in result.output
    assert "positional argument" not in result.output


def test_cli_names_only_what_is_missing(tmp_path: Path) -> None:
    env = client_env(tmp_path, url="http://127.0.0.1:8700", mailbox="ALICE", password="secret")
    result = CliRunner().invoke(cli, ["client", "handshake"], env=env)
    assert result.exit_code == 2
    assert "missing connection settings: --shared-key or $MESH_SHARED_KEY." in result.output
    assert "--url or" not in result.output


def test_refused_connection_names_the_url_and_what_to_check() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with MeshClient(url, "ALICE", PASSWORD, SHARED_KEY, retry=FAST_RETRY) as mesh:
        with pytest.raises(MeshTransportError) as caught:
            mesh.check_inbox()
        with pytest.raises(MeshTransportError) as sending:
            mesh.send_bytes("BOB", b"x", "WF")
    for error in (caught.value, sending.value):
        message = str(error)
        assert message.startswith(f"could not connect to {url} (connection refused, 4 attempts)")
        assert "is the server running?" in message
        assert "http:// or https://" in message
        assert error.url == url
    assert "nothing landed" in str(sending.value)


def https_to(url: str) -> str:
    return url.replace("http://", "https://")


def test_https_to_a_plain_http_server_fails_at_once(
    plain_mailroom_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "mailroom.client")
    with MeshClient(https_to(plain_mailroom_url), "ALICE", PASSWORD, SHARED_KEY, retry=FAST_RETRY) as mesh:
        with pytest.raises(MeshTLSError) as listing:
            mesh.check_inbox()
        with pytest.raises(MeshTLSError) as sending:
            mesh.send_bytes("BOB", b"x", "WF")
    for error in (listing.value, sending.value):
        assert "WRONG_VERSION_NUMBER" in str(error) or "TLS handshake failed" in str(error)
        assert f"use {plain_mailroom_url}" in str(error)
    assert not [record for record in caplog.records if "retry" in record.getMessage()], "not retried"


def test_cli_https_to_a_plain_http_server(plain_mailroom_url: str, tmp_path: Path) -> None:
    env = client_env(
        tmp_path, url=https_to(plain_mailroom_url), mailbox="ALICE", password=PASSWORD, shared_key=SHARED_KEY
    )
    result = CliRunner().invoke(cli, ["client", "inbox"], env=env)
    assert result.exit_code == 1
    assert f"use {plain_mailroom_url}" in result.output
    assert "retry" not in result.output


def test_the_plain_http_server_works_with_http(plain_mailroom_url: str) -> None:
    with MeshClient(plain_mailroom_url, "ALICE", PASSWORD, SHARED_KEY) as mesh:
        assert mesh.check_authentication()


def test_http_to_a_tls_server_suggests_https(mailroom: Target) -> None:
    http_url = mailroom.url.replace("https://", "http://")
    with mailroom.client("ALICE", url=http_url) as mesh, pytest.raises(MeshTransportError) as caught:
        mesh.check_inbox()
    assert f"if the server serves HTTPS, use {mailroom.url}" in str(caught.value)
