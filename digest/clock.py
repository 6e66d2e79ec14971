"""Where the scheduler reads the time and waits for it: the system clock, or in tests a
simulated one that jumps to the next run instead of sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from threading import TIMEOUT_MAX
from typing import Protocol


class Clock(Protocol):
    """Where the scheduler gets the time and waits for it."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float | None, wake: threading.Event, stopping: Callable[[], bool]) -> None:
        """Return after ``seconds`` (None: no limit), or sooner when ``wake`` is set or
        ``stopping()`` turns true."""


class SystemClock:
    # A stop is asked for by a signal handler, which only sets a flag (taking a lock inside a
    # handler can deadlock with the interrupted code), so waiting checks it at least this often.
    POLL_SECONDS = 0.5

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float | None, wake: threading.Event, stopping: Callable[[], bool]) -> None:
        deadline = time.monotonic() + (TIMEOUT_MAX if seconds is None else max(seconds, 0.0))
        while not stopping():
            left = deadline - time.monotonic()
            if left <= 0 or wake.wait(min(left, self.POLL_SECONDS)):
                return
