"""Progress on stderr: a rich bar with the time left on a terminal, plain lines otherwise."""

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from lcmap.cli._app import is_quiet


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr; yields an ``update(done, total)`` callback.

    The callback also takes ``description=`` to relabel the bar between stages.
    Silent with ``-q``.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:  # a log file or a pipe: one line per stage and per tenth
        yield _StageLines(description, quiet=is_quiet())
        return
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=is_quiet(),
        transient=False,
    )
    tasks = [progress.add_task(description, total=None, status="")]
    shown: list[bool] = []  # the bar appears with the first news: an early error prints alone

    def show() -> None:
        if not shown:
            progress.start()
            shown.append(True)

    class Update:
        """``update(done, total)``; ``.status(text)`` beside the bar; ``.phase(name)`` a new bar.

        The first phase takes over the command's own bar while nothing was counted on it.
        """

        def __call__(self, done: int, total: int, description: str | None = None) -> None:
            show()
            if description is not None:
                progress.update(tasks[-1], description=description)
            progress.update(tasks[-1], completed=done, total=total)

        def status(self, text: str) -> None:
            show()
            progress.update(tasks[-1], status=text)

        def phase(self, name: str) -> None:
            show()
            last = progress.tasks[-1]
            if last.total is None and not last.completed:
                progress.update(tasks[-1], description=name, status="")
                return
            tasks.append(progress.add_task(name, total=None, status=""))

    try:
        yield Update()
    finally:
        if shown:
            progress.stop()


class _StageLines:
    """Progress as plain lines on stderr, for when it is not a terminal (``2> run.log``, a
    batch scheduler): a line when a stage starts, then one at each tenth of it done, with the
    time taken and an estimate of the time left. Same interface as the bar's callback."""

    def __init__(self, description: str, quiet: bool) -> None:
        self.quiet = quiet
        self.stage = description
        self.started = time.monotonic()
        self.tenth = -1
        self.announced = False

    def _line(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def __call__(self, done: int, total: int, description: str | None = None) -> None:
        if description is not None and description != self.stage:
            self.phase(description)
        if not self.announced:
            self._line(f"{self.stage}: started")
            self.announced = True
        if total <= 0:
            return
        tenth = min(10, done * 10 // total)
        if tenth <= self.tenth or done <= 0:
            return
        self.tenth = tenth
        elapsed = time.monotonic() - self.started
        left = elapsed * (total - done) / done if done else float("nan")
        eta = f", about {_duration(left)} left" if 0 < done < total else ""
        self._line(f"{self.stage}: {done}/{total} ({tenth * 10}%) in {_duration(elapsed)}{eta}")

    def status(self, text: str) -> None:
        if text:
            self._line(f"{self.stage}: {text}")

    def phase(self, name: str) -> None:
        self.stage, self.started, self.tenth, self.announced = name, time.monotonic(), -1, False


def _duration(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 05 s`` or ``12 s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
