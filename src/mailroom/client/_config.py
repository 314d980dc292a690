"""Connection settings: given directly, from the environment, or from a TOML profile file."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ._errors import ConfigError

DEFAULT_CHUNK_SIZE = 75 * 1024 * 1024
"""NHS's mesh-client default; MESH refuses a single request over 100 MB."""

ENV_PREFIX = "MESH_"
PROFILE_ENV = "MESH_PROFILE"
CONFIG_ENV = "MESH_CONFIG"
DEFAULT_PROFILE = "default"
REQUIRED = ("url", "mailbox", "password", "shared_key")
"""The settings without a default: every connection needs them."""

_ENV_KEYS = {
    "url": "URL",
    "mailbox": "MAILBOX",
    "password": "PASSWORD",
    "shared_key": "SHARED_KEY",
    "cert": "CERT",
    "key": "KEY",
    "ca": "CA",
    "chunk_size": "CHUNK_SIZE",
    "journal_dir": "JOURNAL_DIR",
    "timeout": "TIMEOUT",
}


def env_name(setting: str) -> str:
    """The environment variable of a setting: ``url`` → ``MESH_URL``."""
    return ENV_PREFIX + _ENV_KEYS[setting]


def missing_error(missing: tuple[str, ...]) -> ConfigError:
    """The error for required settings that were not given, naming their variables."""
    names = ", ".join(f"{name} ({env_name(name)})" for name in missing)
    return ConfigError(f"missing connection settings: {names}", missing=missing)


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$MESH_CONFIG``, else ``$XDG_CONFIG_HOME/mailroom/client.toml`` (``~/.config/...``)."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "mailroom" / "client.toml"


def default_journal_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/mailroom-client`` (``~/.local/state/mailroom-client``)."""
    env = os.environ if environ is None else environ
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    return base / "mailroom-client"


@dataclass(frozen=True)
class MeshConfig:
    """Everything needed to talk to one mailbox on one MESH server.

    ``cert``/``key`` are the client certificate and key for mutual TLS; ``ca`` is the CA bundle
    to verify the server with (the system store when None). ``journal_dir`` holds resume
    journals of interrupted sends.
    """

    url: str
    mailbox: str
    password: str = field(repr=False)
    shared_key: str = field(repr=False)
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    journal_dir: Path | None = None
    timeout: float = 600.0

    def __post_init__(self) -> None:
        missing = tuple(name for name in REQUIRED if not getattr(self, name))
        if missing:
            raise missing_error(missing)
        if self.chunk_size < 1:
            raise ConfigError("chunk_size must be at least 1 byte")
        if (self.cert is None) != (self.key is None):
            raise ConfigError("a client certificate needs both cert and key")
        object.__setattr__(self, "url", self.url.rstrip("/"))
        object.__setattr__(self, "mailbox", self.mailbox.upper())

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> MeshConfig:
        """Build from plain values (strings are converted); unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown connection settings: {', '.join(sorted(unknown))}")
        converted: dict[str, Any] = {}
        for name, value in values.items():
            if value is None or value == "":
                continue
            converted[name] = _convert(name, value)
        missing = tuple(name for name in REQUIRED if name not in converted)
        if missing:
            raise missing_error(missing)
        return cls(**converted)

    def with_overrides(self, **values: Any) -> MeshConfig:
        given = {name: _convert(name, value) for name, value in values.items() if value not in (None, "")}
        return replace(self, **given)


def _convert(name: str, value: Any) -> Any:
    try:
        if name in ("cert", "key", "ca", "journal_dir"):
            return Path(str(value)).expanduser()
        if name == "chunk_size":
            return int(value)
        if name == "timeout":
            return float(value)
    except ValueError:
        raise ConfigError(f"{name}: not a number: {value!r}") from None
    return str(value)


def values_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``MESH_*`` variables that are set, keyed by setting name."""
    env = os.environ if environ is None else environ
    return {name: env[ENV_PREFIX + key] for name, key in _ENV_KEYS.items() if env.get(ENV_PREFIX + key)}


def values_from_file(path: Path, profile: str) -> dict[str, Any]:
    """One ``[profiles.NAME]`` table of a TOML file (nothing if the file does not exist)."""
    if not path.exists():
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    profiles = document.get("profiles", {})
    if profile not in profiles:
        if profile == DEFAULT_PROFILE:
            return {}
        raise ConfigError(f"{path}: no profile [profiles.{profile}]")
    table = profiles[profile]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [profiles.{profile}] is not a table")
    return dict(table)


def load_config(
    profile: str | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> MeshConfig:
    """Settings from, in rising priority: the profile in the config file, ``MESH_*`` variables,
    then ``overrides`` (None values are skipped).

    The profile is ``profile``, else ``$MESH_PROFILE``, else ``default``; the file is
    ``config_file``, else :func:`default_config_path`.
    """
    env = os.environ if environ is None else environ
    name = profile or env.get(PROFILE_ENV) or DEFAULT_PROFILE
    path = config_file or default_config_path(env)
    values: dict[str, Any] = values_from_file(path, name)
    values.update(values_from_env(env))
    values.update({key: value for key, value in overrides.items() if value not in (None, "")})
    return MeshConfig.from_mapping(values)
