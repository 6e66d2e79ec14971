"""How ``digest send`` shows its progress: a rich bar on a terminal, log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from digest.delivery.sender import SendProgress


class _LogProgress:
    """Plain progress lines on stderr (not a terminal): at most one every few seconds."""

    def __init__(self, every: float = 5.0) -> None:
        self._time = time.monotonic
        self.every = every
        self.start = self._time()
        self.last = 0.0

    def __call__(self, p: SendProgress) -> None:
        t = self._time()
        finished = p.sent + p.failed >= p.total
        if t - self.last < self.every and not finished:
            return
        self.last = t
        rate = p.done_this_run / max(t - self.start, 1e-6)
        left = p.total - p.sent - p.failed
        eta = f", about {left / rate:.0f} s left" if rate > 0 and left else ""
        click.echo(f"issue {p.key}: {p.sent}/{p.total} sent, {p.failed} failed, {rate:.0f} messages/s{eta}", err=True)


def _silent(p: SendProgress) -> None:
    pass


class ProgressReporter:
    """A rich progress bar (sent, failed, rate, time left) on a terminal, log lines otherwise;
    nothing with ``quiet`` (-q)."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet

    def __enter__(self) -> Callable[[SendProgress], None]:
        if self.quiet:
            self._bar = None
            return _silent
        if not sys.stderr.isatty():
            self._bar = None
            return _LogProgress()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]} msg/s"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.__enter__()
        self._task: Any = None
        self._start = time.monotonic()

        def update(p: SendProgress) -> None:
            assert self._bar is not None
            if self._task is None:
                self._task = self._bar.add_task(f"issue {p.key}", total=p.total, failed=0, rate="0")
            rate = p.done_this_run / max(time.monotonic() - self._start, 1e-6)
            self._bar.update(self._task, completed=p.sent + p.failed, failed=p.failed, rate=f"{rate:.0f}")

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
