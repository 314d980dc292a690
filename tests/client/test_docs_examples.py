"""The Python examples in docs/client.md run as written against a live Mailroom."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import PASSWORD, SHARED_KEY, Target

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
