"""The shell steps of docs/quickstart.md and docs/deployment.md, run as written.

Every ```bash block of a page runs in order, in a working folder of the test's own, through
``bash -euo pipefail``. Only what must differ is substituted: the port (a free one for 8700,
also as ``MAILROOM_PORT`` where the page relies on the default),
``.venv/bin/`` (this test run's environment), the PostgreSQL host, role and database (a scratch
role and database on the test server), the bucket (one on the tests' moto server) and the
checkout's path. A ``<!-- docs-test: ... -->`` comment on the line before a block says how to
treat it:

- ``install``: installs software. The walkthroughs leave it out (they use this run's
  environment); ``test_install_steps`` runs every such block, in a fresh virtual environment.
- ``background``: starts a server. It is started, waited for (``GET /_ping``), and stopped at the end.
- ``save-as FILE``: a Python block, written to ``FILE`` for the steps after it to run.
- ``skip REASON``: a step no test can run (root, systemd); left out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url
from tests.support import postgres
from tests.support.s3 import S3Server
from tests.support.server import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
VENV_BIN = Path(sys.executable).parent
STEP_TIMEOUT = 120

_FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S)
_MARKER = re.compile(r"^\s*<!-- docs-test: (?P<what>[\w-]+)(?: (?P<arg>[^>]*?))? -->\s*$")
_KINDS = {"install", "background", "save-as", "skip"}


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    kind: str = ""  # the marker: install, background, save-as, skip (or none)
    arg: str = ""


def blocks(page: str) -> list[Block]:
    """The bash and python blocks of ``docs/{page}.md``, dedented, with their markers."""
    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        if match["lang"] not in ("bash", "python"):
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.match(before)
        kind, arg = (marker["what"], marker["arg"] or "") if marker else ("", "")
        assert not marker or kind in _KINDS, f"docs/{page}.md: unknown marker {before.strip()}"
        found.append(Block(match["lang"], textwrap.dedent(match["body"]), kind, arg))
    return found


class Walk:
    """Runs blocks in ``cwd`` with ``env`` after ``substitute``; stops its servers on ``close``."""

    def __init__(self, cwd: Path, env: Mapping[str, str], substitute: Callable[[str], str]) -> None:
        self.cwd = cwd
        self.env = dict(env)
        self.substitute = substitute
        self.servers: list[ServerProcess] = []

    def run(self, code: str, stdin: str = "") -> str:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.substitute(code)],
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            start_new_session=True,  # no terminal: a password prompt reads standard input
        )
        assert done.returncode == 0, f"{code}\nexit {done.returncode}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def start(self, code: str, port: int) -> None:
        log = self.cwd.parent / f"server-{len(self.servers)}.log"
        server = ServerProcess(
            ["bash", "-c", self.substitute(code)],
            log_path=log,
            port=port,
            env=self.env,
            cwd=self.cwd,
            scheme="http",
        )
        self.servers.append(server)
        server.start()

    def walk(self, steps: list[Block], port: int, answers: Mapping[str, str] | None = None) -> list[str]:
        """Run every block but ``install`` and ``skip`` ones → each bash block's output, in order.

        ``answers``: text to type into a block that contains the key (a password prompt's)."""
        outputs = []
        for block in steps:
            if block.kind in ("install", "skip"):
                continue
            if block.lang == "python":
                assert block.kind == "save-as", f"a Python block needs a save-as marker:\n{block.code}"
                (self.cwd / block.arg).write_text(self.substitute(block.code), encoding="utf-8")
            elif block.kind == "background":
                self.start(block.code, port)
            else:
                typed = "".join(text for key, text in (answers or {}).items() if key in block.code)
                outputs.append(self.run(block.code, typed))
        return outputs

    def close(self) -> None:
        for server in self.servers:
            server.stop()


def clean_env(*, venv_on_path: bool, **settings: str) -> dict[str, str]:
    """This environment without ``MAILROOM_*``/``PG*`` settings and without this run's virtual
    environment on ``PATH`` (so ``python3`` is the system's, as a reader's is), unless
    ``venv_on_path``: a page that runs bare ``mailroom`` assumes an activated environment."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MAILROOM_", "PG"))}
    env.pop("VIRTUAL_ENV", None)
    path = [part for part in env["PATH"].split(os.pathsep) if Path(part) != VENV_BIN]
    if venv_on_path:
        path.insert(0, str(VENV_BIN))
    return {**env, "PATH": os.pathsep.join(path), "MAILROOM_SWEEP_INTERVAL": "0", **settings}


def replacer(pairs: Mapping[str, str]) -> Callable[[str], str]:
    def substitute(code: str) -> str:
        for old, new in pairs.items():
            code = code.replace(old, new)
        return code

    return substitute


@pytest.fixture
def walks(tmp_path: Path) -> Iterator[Callable[..., Walk]]:
    with ExitStack() as stack:

        def make(env: Mapping[str, str], substitute: Callable[[str], str]) -> Walk:
            cwd = tmp_path / "work"
            cwd.mkdir()
            walk = Walk(cwd, env, substitute)
            stack.callback(walk.close)
            return walk

        yield make


def test_the_pages_mark_their_steps() -> None:
    for page in ("quickstart", "deployment"):
        kinds = [block.kind for block in blocks(page)]
        assert "install" in kinds, page
        assert "background" in kinds, page


def test_quickstart(walks: Callable[..., Walk]) -> None:
    port = free_port()
    # the page's server takes the default port, 8700: here a free one, from the environment
    walk = walks(
        clean_env(venv_on_path=False, MAILROOM_PORT=str(port)),
        replacer({"8700": str(port), ".venv/bin/": f"{VENV_BIN}/"}),
    )
    steps = blocks("quickstart")
    outputs = walk.walk(steps, port)

    ping = next(block.code for block in steps if "/_ping" in block.code)
    said = json.loads(ping.split("# ", 1)[1])
    assert json.loads(next(out for out in outputs if '"status"' in out and "running" in out)) == said
    assert "X26ABC1" in outputs[1], "mailbox list shows the new mailboxes"
    key = (walk.cwd / "mailroom-data" / "shared.key").read_text().strip()
    assert outputs[2].strip() == key
    assert "b'Hello'" in outputs[3], f"send_receive.py received the message: {outputs[3]}"
    assert re.search(r'"status":\s*"acknowledged"', outputs[4]), outputs[4]
    assert "Hello from curl" in outputs[4]


@pytest.fixture
def scratch_role() -> Iterator[str]:
    """A role name for the doc's ``createuser``/``createdb``; the role and its database are dropped after."""
    postgres.require_postgres()
    name = postgres.database_name("docs")
    yield name
    admin = make_url(postgres.ADMIN_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def aws_cli(folder: Path) -> str:
    """``aws`` if installed; else a stand-in in ``folder`` for the one call the page makes (``s3 mb``)."""
    if shutil.which("aws"):
        return "aws"
    script = folder / "aws"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys, boto3\n"
        "assert sys.argv[1:3] == ['s3', 'mb'], sys.argv\n"
        "region = sys.argv[sys.argv.index('--region') + 1]\n"
        "boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'], region_name=region).create_bucket(\n"
        "    Bucket=sys.argv[3].removeprefix('s3://'),\n"
        "    CreateBucketConfiguration={'LocationConstraint': region})\n"
    )
    script.chmod(0o755)
    return str(script)


def test_deployment(
    walks: Callable[..., Walk], scratch_role: str, s3_server: S3Server, tmp_path: Path
) -> None:
    admin = make_url(postgres.ADMIN_URL)
    host, pg_port = admin.host or "127.0.0.1", str(admin.port or 5432)
    bucket = f"mailroom-docs-{os.getpid()}"
    port = free_port()
    settings = {
        "MAILROOM_DATABASE_URL": f"postgresql://{scratch_role}:pw@{host}:{pg_port}/{scratch_role}",
        "MAILROOM_PAYLOAD_STORE": "s3",
        "MAILROOM_S3_BUCKET": bucket,
        "MAILROOM_S3_REGION": "eu-west-2",
        "MAILROOM_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "MAILROOM_SHARED_KEY": "DocsWalkthroughKey",
    }
    page = (DOCS / "deployment.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in page for name in settings), "only the settings the page names"
    aws = {**s3_server.env(), "AWS_ENDPOINT_URL": s3_server.endpoint_url}  # for the aws command too
    pg = {"PGPORT": pg_port, "PGPASSWORD": admin.password or ""}
    env = clean_env(venv_on_path=True, **settings, **aws, **pg)
    role_and_database = re.compile(r"^(create(?:user|db) .*)$", re.M)
    pairs = {
        "db.internal": host,
        "-U postgres": f"-U {admin.username or 'postgres'}",
        "s3://mailroom-payloads": f"s3://{bucket}",
        "aws s3": f"{aws_cli(tmp_path)} s3",
        "--host 0.0.0.0": "--host 127.0.0.1",
        "8700": str(port),
    }

    def substitute(code: str) -> str:
        code = role_and_database.sub(lambda m: re.sub(r"\bmailroom\b", scratch_role, m[1]), code)
        return replacer(pairs)(code)

    walk = walks(env, substitute)
    (walk.cwd / "mailboxes.jsonl").write_text('{"mailbox_id": "X26ABC1", "password": "secret1"}\n')
    (walk.cwd / "workflows.jsonl").write_text(
        '{"workflow_id": "WF", "senders": ["X26ABC1"], "receivers": []}\n'
    )
    outputs = walk.walk(blocks("deployment"), port, answers={"--pwprompt": "pw\npw\n"})

    assert any("database at revision" in out for out in outputs)
    assert httpx.get(f"http://127.0.0.1:{port}/_ping").json()["status"] == "running"
    banner = walk.servers[0].log_path.read_text()
    assert f"payloads: S3 bucket {bucket}" in banner
    assert ":***@" in banner, "the database URL is shown without its password"
    assert sorted(p.name for p in walk.cwd.iterdir()) == ["mailboxes.jsonl", "workflows.jsonl"]


@pytest.mark.slow
def test_install_steps(tmp_path: Path) -> None:
    """Every install block of both pages, in order, in a fresh virtual environment (~1 minute)."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = clean_env(venv_on_path=False)
    env["PATH"] = f"{cwd / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"  # the fresh one, once made
    checkout = re.compile(r"(?<=[\s'\"])\.(?=[\s'\"\[]|$)", re.M)  # the project argument: "." or ".[extras]"

    def substitute(code: str) -> str:
        return checkout.sub(str(ROOT), code.replace("constraints.txt", str(ROOT / "constraints.txt")))

    walk = Walk(cwd, env, substitute)
    for page in ("quickstart", "deployment"):
        for block in blocks(page):
            if block.kind == "install":
                walk.run(block.code)
    python = cwd / ".venv" / "bin" / "python"
    where = walk.run(f"{python} -c 'import mailroom, psycopg, boto3, mesh_client; print(mailroom.__file__)'")
    assert where.startswith(str(cwd / ".venv")), f"the wheel's mailroom, not the checkout's: {where}"
    assert "mailroom, version" in walk.run(f"{cwd / '.venv' / 'bin' / 'mailroom'} --version")
