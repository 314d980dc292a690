"""What ``mailroom client`` shows: result lines and tables on stdout, progress bars on stderr.

On a terminal both streams are one screen. rich redraws its progress display in place (carriage
return, erase line, cursor up), so a line written to stdout behind its back is overwritten by
the next redraw. While bars are shown, result lines therefore go through the progress display's
own console, which prints them above the bars; when stdout is not a terminal (a file, a pipe)
they go to stdout as usual and the bars stay on the terminal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console, RenderableType
from rich.filesize import decimal
from rich.panel import Panel
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from mailroom.client import InboxItem, Report, Tracking


def line(*parts: str | tuple[str, str]) -> Text:
    """A result line from plain strings and (text, style) pairs; never read as rich markup,
    so file names with brackets print as they are."""
    return Text.assemble(*parts)


def size_text(size: int | None) -> str:
    return "-" if size is None else decimal(size)


def time_text(value: str | None) -> str:
    """An ISO time from the server (UTC) as ``2024-05-01 12:30:00``."""
    if not value:
        return "-"
    return value.replace("T", " ").partition(".")[0].removesuffix("Z")


@dataclass
class Bar:
    """One transfer's progress bar; :meth:`finish` takes it off the screen."""

    progress: Progress
    task: TaskID

    def advance(self, amount: int) -> None:
        self.progress.advance(self.task, amount)

    def update(self, completed: int, total: int | None) -> None:
        self.progress.update(self.task, completed=completed, total=total)

    def finish(self) -> None:
        self.progress.remove_task(self.task)
        self.progress.refresh()  # off the screen before the next line is printed above it


@dataclass
class Transfers:
    """The bars of one command, and the way to print results without breaking them."""

    progress: Progress
    stdout: Console
    downloads: dict[str, Bar] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return not self.progress.disable

    def start(self, name: str, total: int | None) -> Bar:
        task = self.progress.add_task(name, total=total)
        self.progress.refresh()  # show the bar at once, not at the next tick
        return Bar(self.progress, task)

    def print(self, renderable: RenderableType) -> None:
        """A result line: above the bars while they share the terminal, else on stdout."""
        console = self.progress.console if self.live and self.stdout.is_terminal else self.stdout
        console.print(renderable, soft_wrap=True, highlight=False)

    def download(self, message_id: str, received: int, expected: int | None) -> None:
        """A ``DownloadProgress`` callback: one bar per message, the last one's taken down."""
        bar = self.downloads.get(message_id)
        if bar is None:
            self.done_downloading()
            bar = self.downloads[message_id] = self.start(message_id, expected)
        bar.update(received, expected)

    def done_downloading(self) -> None:
        for bar in self.downloads.values():
            bar.finish()
        self.downloads.clear()


@contextmanager
def transfers(stdout: Console, stderr: Console, *, quiet: bool) -> Iterator[Transfers]:
    """Progress bars on ``stderr`` while the block runs: none with ``quiet`` (``--json``) or
    when stderr is not a terminal. They are gone from the screen when the block ends."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    disable = quiet or not stderr.is_terminal
    with Progress(*columns, console=stderr, transient=True, disable=disable) as progress:
        yield Transfers(progress, stdout)


def inbox_table(items: list[InboxItem]) -> Table:
    """One row per waiting message; ids are never cut (they are what you type next)."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("message id", no_wrap=True)
    table.add_column("from", no_wrap=True)
    table.add_column("subject / file", overflow="fold", ratio=1)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("received (UTC)", no_wrap=True)
    for item in items:
        table.add_row(
            item.message_id,
            item.sender or "-",
            _about(item),
            size_text(item.size),
            time_text(item.received_at),
        )
    return table


def _about(item: InboxItem) -> Text:
    if item.is_report:
        return Text(f"NON-DELIVERY REPORT for {item.linked_message_id or 'an unknown message'}", "bold red")
    parts = [part for part in (item.subject, item.file_name) if part]
    return Text(" / ".join(parts) or "-")


TRACKING_ROWS = (
    ("local id", "local_id"),
    ("recipient", "recipient"),
    ("workflow", "workflow_id"),
    ("file name", "file_name"),
)
TRACKING_TIMES = (
    ("uploaded", "uploaded_at"),
    ("status since", "status_at"),
    ("downloaded", "downloaded_at"),
    ("expires", "expires_at"),
)


def tracking_table(found: Tracking) -> Table:
    """The status first, then what the server said about the message; empty fields are left out."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("message id", found.message_id)
    table.add_row("status", _status(found))
    for label, name in TRACKING_ROWS:
        value = getattr(found, name)
        if value:
            table.add_row(label, str(value))
    for label, name in TRACKING_TIMES:
        value = getattr(found, name)
        if value:
            table.add_row(f"{label} (UTC)", time_text(value))
    return table


def _status(found: Tracking) -> Text:
    failed = found.status in ("undeliverable", "error")
    text = Text(found.status or "unknown (the server gave no status)", "bold red" if failed else "bold")
    detail = " ".join(part for part in (found.status_event, found.status_code) if part)
    if detail or found.status_description:
        text.append(f"  {detail}{': ' if detail and found.status_description else ''}")
        text.append(found.status_description or "")
    return text


def report_panel(report: Report) -> Panel:
    """Reports mean a message you sent did not arrive: never let one scroll past unnoticed."""
    body = Text()
    body.append("Message ")
    body.append(report.linked_message_id or "unknown", "bold")
    body.append(" was NOT delivered.\n")
    body.append(f"Code {report.code or '?'}: {report.description or 'no description'}\n")
    body.append(f"Workflow {report.workflow_id or '-'}  local id {report.local_id or '-'}\n")
    body.append(f"Report id {report.message_id}")
    return Panel(body, title="NON-DELIVERY REPORT", border_style="bold red", style="red")
