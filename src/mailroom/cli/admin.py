"""``mailroom admin``: administrators of the administration API, and calling it from a terminal."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from mailroom.cli.common import (
    data_dir_option,
    errors_as_usage,
    open_container,
    password_stdin_option,
    read_password,
)
from mailroom.container import Container
from mailroom.domain.admin import Privilege

#: How long one ``get-status`` call waits for news while a job is followed.
FOLLOW_WAIT_MS = 10_000


password_option = click.option(
    "--password",
    default=None,
    help="The administrator's password (at least 8 characters). Asked for twice, unechoed, when "
    "neither this nor --password-stdin is given: given here, it is kept in the shell history.",
)


@contextmanager
def _store(data_dir: Path | None) -> Iterator[Container]:
    container = open_container(data_dir)
    try:
        with errors_as_usage():
            yield container
    finally:
        container.close()


@click.group()
def admin() -> None:
    """The administration API: its administrators, and calling its functions."""


@admin.group()
def user() -> None:
    """Add, list, remove administrators and change their passwords (argon2id hashes)."""


@user.command("add")
@click.argument("name")
@password_option
@password_stdin_option
@click.option(
    "--privilege",
    type=click.Choice([p.value for p in Privilege]),
    default=Privilege.ADMIN.value,
    show_default=True,
    help="`admin` may call every function; `read` only those that change nothing.",
)
@data_dir_option
def user_add(
    name: str, password: str | None, password_stdin: bool, privilege: str, data_dir: Path | None
) -> None:
    """Add the administrator NAME."""
    secret = read_password(password, password_stdin)
    with _store(data_dir) as container:
        container.admin_users.add(name, secret, Privilege(privilege))
    click.echo(f"administrator {name} added ({privilege})")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@data_dir_option
def user_list(as_json: bool, data_dir: Path | None) -> None:
    """List the administrators."""
    with _store(data_dir) as container:
        users = container.admin_users.all()
    for each in users:
        if as_json:
            record = {
                "name": each.name,
                "privilege": each.privilege.value,
                "created": each.created_at.isoformat(),
            }
            click.echo(json.dumps(record))
        else:
            click.echo(f"{each.name:<30} {each.privilege.value:<6} created {each.created_at:%Y-%m-%d %H:%M}")
    if not users and not as_json:
        click.echo("no administrators: add one with `mailroom admin user add NAME`", err=True)


@user.command("password")
@click.argument("name")
@password_option
@password_stdin_option
@data_dir_option
def user_password(name: str, password: str | None, password_stdin: bool, data_dir: Path | None) -> None:
    """Change the password of the administrator NAME."""
    secret = read_password(password, password_stdin)
    with _store(data_dir) as container:
        container.admin_users.set_password(name, secret)
    click.echo(f"password of {name} changed")


@user.command("remove")
@click.argument("name")
@data_dir_option
def user_remove(name: str, data_dir: Path | None) -> None:
    """Remove the administrator NAME (never the last full administrator)."""
    with _store(data_dir) as container:
        container.admin_users.remove(name)
    click.echo(f"administrator {name} removed")


# -- calling the API -------------------------------------------------------------------------------

url_option = click.option(
    "--url",
    envvar="MAILROOM_ADMIN_URL",
    default="http://127.0.0.1:8700",
    show_default=True,
    help="The server [env: MAILROOM_ADMIN_URL].",
)
user_option = click.option(
    "--user",
    "user_name",
    envvar="MAILROOM_ADMIN_USER",
    required=True,
    help="Administrator [env: MAILROOM_ADMIN_USER].",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the raw envelope(s) as JSON.")


class Api:
    """The administration API over HTTP, as one administrator."""

    def __init__(self, url: str, user_name: str, password: str) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"), auth=(user_name, password), timeout=FOLLOW_WAIT_MS / 1000 + 30
        )
        self.url = url

    def post(self, path: str, data: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(path, data=data)
        except httpx.ConnectError as exc:
            raise click.ClickException(
                f"cannot reach {self.url}: {exc} (is the server running with MAILROOM_ADMIN_API=true?)"
            ) from None
        except httpx.HTTPError as exc:
            raise click.ClickException(f"{self.url}: {exc}") from None
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise click.ClickException(
                f"{self.url}{path}: HTTP {response.status_code}, not the API's answer"
            ) from None
        if response.status_code == 404 and "error" not in body:
            raise click.ClickException(f"{self.url}: no administration API here (MAILROOM_ADMIN_API=true?)")
        return body

    def close(self) -> None:
        self._http.close()


def _api_password() -> str:
    return os.environ.get("MAILROOM_ADMIN_PASSWORD") or str(
        click.prompt("Password", hide_input=True, err=True)
    )


def _arguments(pairs: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise click.UsageError(f"arguments are NAME=VALUE, not {pair!r}")
        values[name] = value
    return values


def _fail(body: dict[str, Any]) -> None:
    error = body.get("error") or {}
    message = error.get("message", "failed")
    details = error.get("details")
    raise click.ClickException(f"{message} ({details})" if details else message)


def _print_result(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(body, indent=2))
    elif body.get("result") is not None:
        click.echo(json.dumps(body["result"], indent=2))
    if body.get("error"):
        _fail(body)


@admin.command("invoke")
@click.argument("function")
@click.argument("arguments", nargs=-1)
@url_option
@user_option
@json_option
@click.option("--cancel", is_flag=True, help="On Ctrl-C, cancel a running job instead of leaving it running.")
def invoke(
    function: str, arguments: tuple[str, ...], url: str, user_name: str, as_json: bool, cancel: bool
) -> None:
    """Call FUNCTION with NAME=VALUE arguments (numbers and booleans as JSON writes them).

    A long function's job is followed with a progress bar and its log until it ends; Ctrl-C
    stops following (the job goes on: `mailroom admin status TOKEN`) or, with --cancel, cancels it.
    The password comes from $MAILROOM_ADMIN_PASSWORD or a prompt."""
    api = Api(url, user_name, _api_password())
    try:
        body = api.post(f"/api/invoke/{function}", _arguments(arguments))
        if body.get("statusCode") == "running" and body.get("token"):
            body = _follow(api, body, as_json=as_json, cancel=cancel)
        _print_result(body, as_json)
    finally:
        api.close()


@admin.command("status")
@click.argument("token")
@url_option
@user_option
@json_option
def status(token: str, url: str, user_name: str, as_json: bool) -> None:
    """Follow the job TOKEN until it ends (Ctrl-C stops following)."""
    api = Api(url, user_name, _api_password())
    try:
        body = api.post(
            "/api/get-status", {"token": token, "lastKnownStatusVersion": "0", "millisecondsTimeout": "0"}
        )
        if body.get("error") and body.get("statusCode") != "failed":
            _fail(body)
        if body.get("statusCode") == "running":
            body = _follow(api, body, as_json=as_json, cancel=False)
        _print_result(body, as_json)
    finally:
        api.close()


@admin.command("cancel")
@click.argument("token")
@url_option
@user_option
def cancel_job(token: str, url: str, user_name: str) -> None:
    """Ask the job TOKEN to stop (it ends as cancelled at its next safe point)."""
    api = Api(url, user_name, _api_password())
    try:
        body = api.post("/api/cancel-async", {"token": token})
        if body.get("error"):
            _fail(body)
        click.echo(f"job {token}: cancel requested ({body.get('statusCode')})")
    finally:
        api.close()


def _follow(api: Api, body: dict[str, Any], *, as_json: bool, cancel: bool) -> dict[str, Any]:
    """Poll the job until it ends, showing its progress and log on stderr."""
    token = str(body["token"])
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=as_json) as progress:
        task = progress.add_task(body.get("statusText") or "running", total=100)
        try:
            while body.get("statusCode") == "running":
                for line in (body.get("logOutput") or "").splitlines():
                    progress.console.print(line, markup=False, highlight=False)
                progress.update(
                    task,
                    completed=body.get("percentProgress") or 0,
                    description=body.get("statusText") or "running",
                )
                body = api.post(
                    "/api/get-status",
                    {
                        "token": token,
                        "lastKnownStatusVersion": str(body.get("statusVersion", 0)),
                        "millisecondsTimeout": str(FOLLOW_WAIT_MS),
                    },
                )
                if body.get("error") and body.get("statusCode") == "running":
                    _fail(body)
        except KeyboardInterrupt:
            if cancel:
                api.post("/api/cancel-async", {"token": token})
                raise click.ClickException(f"job {token}: cancel requested") from None
            raise click.ClickException(
                f"stopped following; the job goes on: mailroom admin status {token}"
            ) from None
        for line in (body.get("logOutput") or "").splitlines():
            progress.console.print(line, markup=False, highlight=False)
    return body
