"""The Python and shell examples in docs/client.md run as written against a live Mailroom."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.server import ServerProcess

from .conftest import PASSWORD, SHARED_KEY, Target, clean_env

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"


def examples() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def test_the_docs_have_send_and_receive_examples() -> None:
    code = "\n".join(examples())
    assert "send_file" in code
    assert "check_and_download" in code


def test_examples_run(mailroom: Target, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = tmp_path / "journal"
    profiles = "".join(
        f'[profiles.{name.lower()}]\nurl = "{mailroom.url}"\nmailbox = "{name}"\npassword = "{PASSWORD}"\n'
        f'shared_key = "{SHARED_KEY}"\nca = "{mailroom.pki.ca_cert}"\njournal_dir = "{journal}"\n'
        for name in ("ALICE", "BOB")
    )
    (tmp_path / "client.toml").write_text(profiles)
    monkeypatch.setenv("MESH_CONFIG", str(tmp_path / "client.toml"))
    monkeypatch.chdir(tmp_path)
    for code in examples():
        exec(compile(code, str(DOC), "exec"), {})
    with mailroom.client("BOB") as bob:
        assert bob.check_inbox() == []
    saved = sorted(p.name for p in (tmp_path / "inbox").glob("*.dat"))
    assert len(saved) == 2, "the results file and the small payload (the JSON one was processed in memory)"


def shell_blocks() -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


DOC_URL = "http://127.0.0.1:8700"
SERVE = re.compile(r"^mailroom serve\b.*$", re.MULTILINE)


def test_the_shell_examples_use_the_url_mailroom_serves() -> None:
    script = "\n".join(shell_blocks())
    assert f"export MESH_URL={DOC_URL} " in script, "mailroom serve without --tls-cert is plain HTTP"
    assert "https://localhost" not in DOC.read_text(encoding="utf-8")
    assert len(SERVE.findall(script)) == 1


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_shell_examples_run_as_written(tmp_path: Path) -> None:
    """docs/client.md's shell commands, in order, in one folder: the set-up, then `mailroom
    serve` (started here, on a free port instead of 8700, which may be taken), then the client
    session with the URL's port changed to match. Nothing else is changed."""
    script = "\n".join(shell_blocks())
    serve = SERVE.search(script)
    assert serve is not None
    setup, session = script[: serve.start()], script[serve.end() :]
    env = {**clean_env(), "HOME": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    done = bash(setup, tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    argv = [sys.executable, "-m", *shlex.split(serve.group(0), comments=True), "--port", "{port}"]
    with ServerProcess(
        argv, log_path=tmp_path / "server.log", env=env, cwd=tmp_path, scheme="http"
    ) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        done = bash(session.replace(DOC_URL, server.base_url), tmp_path, env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"ALICE: authenticated at {server.base_url}" in done.stdout
    assert len(re.findall(r"^sent \S+ → BOB: \d{20}_[0-9A-F]{6}$", done.stdout, re.MULTILINE)) == 3
    assert "3 message(s) waiting" in done.stderr
    assert len(list((tmp_path / "inbox").glob("*.dat"))) == 3, "one by id, then the other two with --all"
    assert re.search(r"^status\s+acknowledged\s*$", done.stdout, re.MULTILINE), (
        "track shows the first one's status"
    )
    lookup = json.loads(done.stdout[done.stdout.rindex("[") :])
    assert lookup == [{"mailbox_id": "BOB", "mailbox_name": None}]
