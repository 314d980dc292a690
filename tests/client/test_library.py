"""The client package itself: public surface, no server imports, tokens, profiles."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import mailroom.client
from mailroom.auth.mesh_hmac import hash_matches, parse_token
from mailroom.client import ConfigError, MeshConfig, build_token, load_config

SRC = Path(__file__).resolve().parents[2] / "src" / "mailroom"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_all_is_complete_and_exact() -> None:
    public = {name for name in vars(mailroom.client) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(mailroom.client, name)).__name__ == "module"}
    assert set(mailroom.client.__all__) == public - modules
    assert sorted(mailroom.client.__all__) == sorted(set(mailroom.client.__all__))


def test_client_imports_no_server_code() -> None:
    offenders = [
        f"{path.name}: {name}"
        for path in sorted((SRC / "client").glob("*.py"))
        for name in _imports(path)
        if name.startswith("mailroom") or name in ("fastapi", "starlette", "sqlalchemy")
    ]
    assert offenders == []
    code = "import sys, mailroom.client; print(sorted(m for m in sys.modules if m.startswith('mailroom')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert all(name == "mailroom" or name.startswith("mailroom.client") for name in eval(loaded))


def test_cli_module_imports_only_the_client() -> None:
    """`mailroom client` (cli/client.py and its output module) needs nothing but the library."""
    names = _imports(SRC / "cli" / "client.py")
    assert {name for name in names if name.startswith("mailroom")} == {
        "mailroom.client",
        "mailroom.cli.client_output",
    }
    names = _imports(SRC / "cli" / "client_output.py")
    assert {name for name in names if name.startswith("mailroom")} == {"mailroom.client"}


def test_py_typed_ships_with_the_package() -> None:
    assert (SRC / "client" / "py.typed").exists()
    pyproject = (SRC.parents[1] / "pyproject.toml").read_text()
    assert 'packages = ["src/mailroom"]' in pyproject, "hatch ships every file under src/mailroom"


def test_token_is_accepted_by_the_servers_verifier() -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    header = build_token("ALICE", "password", "TestKey", nonce="abc", nonce_count=3, when=when)
    token = parse_token(header)
    assert header.startswith("NHSMESH ALICE:abc:3:202405011230:")
    assert hash_matches("TestKey", token, "password")
    assert not hash_matches("OtherKey", token, "password")


def test_profile_then_environment_then_arguments(tmp_path) -> None:
    config_file = tmp_path / "client.toml"
    config_file.write_text(
        '[profiles.default]\nurl = "https://a"\nmailbox = "alice"\npassword = "p"\nshared_key = "k"\n'
        '[profiles.live]\nurl = "https://live"\nmailbox = "X26"\npassword = "q"\nshared_key = "k2"\n'
        'cert = "~/c.pem"\nkey = "/k.pem"\nchunk_size = 1000\n'
    )
    default = load_config(config_file=config_file, environ={})
    assert (default.url, default.mailbox, default.password) == ("https://a", "ALICE", "p")
    live = load_config("live", config_file=config_file, environ={"MESH_PASSWORD": "from-env"})
    assert (live.url, live.password, live.chunk_size, live.key) == (
        "https://live",
        "from-env",
        1000,
        Path("/k.pem"),
    )
    assert live.cert == Path("~/c.pem").expanduser()
    via_env = load_config(config_file=config_file, environ={"MESH_PROFILE": "live"}, mailbox="bob")
    assert (via_env.url, via_env.mailbox) == ("https://live", "BOB")


def test_bad_configuration_is_reported(tmp_path) -> None:
    with pytest.raises(ConfigError, match="shared_key"):
        load_config(
            config_file=tmp_path / "missing.toml",
            environ={"MESH_URL": "u", "MESH_MAILBOX": "m", "MESH_PASSWORD": "p"},
        )
    with pytest.raises(ConfigError, match="no profile"):
        load_config("nope", config_file=_write(tmp_path / "c.toml", "[profiles.default]\n"), environ={})
    with pytest.raises(ConfigError, match="both cert and key"):
        MeshConfig("u", "m", "p", "k", cert=Path("c"))
    assert "secret" not in repr(MeshConfig("u", "m", "secret", "key"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
