"""``mailroom client`` as a user sees it: run on an 80x24 pseudo-terminal, the final screen read
back through the emulator in ``terminal.py`` (progress bars on stderr, results on stdout)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from .conftest import PASSWORD, SHARED_KEY, Target
from .terminal import Run, Screen, run_on_terminal

MIB = 1024 * 1024


@pytest.fixture
def on_terminal(mailroom: Target, tmp_path: Path):  # type: ignore[no-untyped-def]
    def run(mailbox: str, *args: str) -> Run:
        env = {
            **os.environ, "MESH_URL": mailroom.url, "MESH_MAILBOX": mailbox, "MESH_PASSWORD": PASSWORD,
            "MESH_SHARED_KEY": SHARED_KEY, "MESH_CA": str(mailroom.pki.ca_cert),
            "MESH_JOURNAL_DIR": str(tmp_path / "journal"), "MESH_CONFIG": str(tmp_path / "none.toml"),
        }  # fmt: skip
        return run_on_terminal([sys.executable, "-m", "mailroom", "client", *args], env=env, cwd=tmp_path)

    return run


def big_file(path: Path, size: int, seed: int) -> Path:
    path.write_bytes(bytes([seed]) * size)
    return path


def drew_a_bar(run: Run, name: str) -> bool:
    """Whether a progress bar for ``name`` was on screen at some point (rich draws bars with ━)."""
    text = run.raw.decode("utf-8", errors="replace")
    return any(name in frame and "━" in frame for frame in text.split("\r"))


def test_the_emulator_applies_erasing_and_cursor_moves() -> None:
    screen = Screen(20, 5)
    screen.feed("one\r\nbar ━━━\r\x1b[2Ktwo\r\nthree\x1b[1A\r\x1b[2Kdone\r\n")
    assert screen.lines() == ["one", "done", "three"]
    screen.feed("x" * 25)
    assert screen.lines()[-2:] == ["x" * 20, "x" * 5]


def test_two_file_send_keeps_every_result_line_on_screen(on_terminal, mailroom: Target, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files = [big_file(tmp_path / f"big{n}.bin", 24 * MIB, n) for n in (1, 2)]
    run = on_terminal(
        "ALICE", "send", *map(str, files), "--to", "BOB", "--workflow", "WF", "--chunk-size", str(8 * MIB)
    )
    assert run.returncode == 0, run.text
    assert drew_a_bar(run, "big1.bin"), "the bars were shown meanwhile"
    assert drew_a_bar(run, "big2.bin")
    with mailroom.client("BOB") as bob:
        ids = {bob.download_message(i, tmp_path / "in").file_name: i for i in bob.check_inbox()}
    screen = "".join(run.lines)  # a line longer than 80 columns wraps onto the next row
    for path in files:
        assert f"sent {path} → BOB: {ids[path.name]}" in screen, run.text
    assert "━" not in run.text, "no bar is left behind"


def test_download_all_shows_progress_and_keeps_the_lines(on_terminal, mailroom: Target, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with mailroom.client("ALICE") as alice:
        ids = [
            alice.send_bytes("BOB", bytes([n]) * (3 * MIB), "WF", chunk_size=MIB).message_id for n in (1, 2)
        ]
    run = on_terminal("BOB", "download", "--all", "--folder", "in")
    assert run.returncode == 0, run.text
    screen = "".join(run.lines)
    for message_id in ids:
        assert drew_a_bar(run, message_id)
        assert f"{message_id}  {3 * MIB} bytes  from ALICE  → in/{message_id}.dat" in screen, run.text
        assert (tmp_path / "in" / f"{message_id}.dat").stat().st_size == 3 * MIB
    assert run.lines[-1] == "2 message(s) downloaded (not acknowledged); 0 non-delivery report(s)"


def test_download_all_ack_shows_progress(on_terminal, mailroom: Target, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with mailroom.client("ALICE") as alice:
        message_id = alice.send_bytes("BOB", b"z" * (2 * MIB), "WF").message_id
    run = on_terminal("BOB", "download", "--all", "--ack", "--folder", "in")
    assert run.returncode == 0, run.text
    assert drew_a_bar(run, message_id)
    assert f"{message_id}  {2 * MIB} bytes  from ALICE  → in/{message_id}.dat" in "".join(run.lines)
    assert run.lines[-1] == "1 message(s) downloaded and acknowledged; 0 non-delivery report(s)"


def test_inbox_is_a_table(on_terminal, mailroom: Target, tmp_path) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "report.csv"
    report.write_text("a,b\n")
    with mailroom.client("ALICE") as alice:
        first = alice.send_file("BOB", report, "WF", subject="Monthly results").message_id
        second = alice.send_bytes("BOB", b"x" * 2000, "WF", file_name="notes.txt").message_id
    run = on_terminal("BOB", "inbox")
    assert run.returncode == 0, run.text
    header, *rows, summary = run.lines
    assert header.split() == ["message", "id", "from", "subject", "/", "file", "size", "received", "(UTC)"]
    assert summary == "2 message(s) waiting"
    subject = slice(header.index("subject / file"), header.index("size"))
    by_id: dict[str, list[str]] = {}
    for row in rows:  # a long subject wraps within its column onto rows of its own
        if row.startswith(" "):
            by_id[list(by_id)[-1]].append(row)
        else:
            by_id[row.split()[0]] = [row]
    assert set(by_id) == {first, second}
    for message_id, about in ((first, "Monthly results / report.csv"), (second, "notes.txt")):
        row, *more = by_id[message_id]
        assert row.split()[1] == "ALICE"
        assert " ".join(part[subject].strip() for part in (row, *more)) == about
        size, date, time_of_day = row.split()[-3:]
        assert size == "-", "Mailroom's HEAD gives no size"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", f"{date} {time_of_day}"), row


def test_track_shows_status_and_times(on_terminal, mailroom: Target) -> None:  # type: ignore[no-untyped-def]
    with mailroom.client("ALICE") as alice:
        message_id = alice.send_bytes("BOB", b"hello", "WF", file_name="hello.txt").message_id
    run = on_terminal("ALICE", "track", message_id)
    assert run.returncode == 0, run.text
    rows = {line[:16].strip(): line[16:].strip() for line in run.lines}
    assert rows["message id"] == message_id
    assert rows["status"] == "accepted"
    assert rows["file name"] == "hello.txt"
    for time_row in ("uploaded (UTC)", "expires (UTC)"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", rows[time_row]), run.text
    assert all(rows.values()), f"no empty fields: {run.text}"
