"""What the ``mailroom`` commands share: settings and the container from the environment, the
data-directory and password options, and domain errors as one-line messages."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from mailroom.container import Container, build_container
from mailroom.errors import MailroomError, ValidationFailed
from mailroom.settings import Settings, SettingsError, load_settings

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (default: $MAILROOM_DATA_DIR or ./mailroom-data).",
)


def settings_from(**overrides: Any) -> Settings:
    try:
        return load_settings(os.environ, **overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


@contextmanager
def errors_as_usage(prefix: str = "") -> Iterator[None]:
    """A domain error becomes a one-line message and exit status 1, not a traceback."""
    try:
        yield
    except ValidationFailed as exc:
        raise click.ClickException(f"{prefix}{exc.name}: {exc.description}") from None
    except MailroomError as exc:
        raise click.ClickException(f"{prefix}{exc.description}") from None


def open_container(data_dir: Path | None) -> Container:
    settings = settings_from(data_dir=data_dir)
    try:
        return build_container(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


password_option = click.option(
    "--password",
    default=None,
    help="The password (part of the NHSMESH HMAC). Asked for twice, unechoed, when neither this nor "
    "--password-stdin is given: given here, it is kept in the shell history and shown in the "
    "process list.",
)
password_stdin_option = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of standard input."
)


def read_password(password: str | None, from_stdin: bool) -> str:
    if password is not None and from_stdin:
        raise click.UsageError("give --password or --password-stdin, not both")
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: standard input has no password")
        return password
    if password is None:
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return password
