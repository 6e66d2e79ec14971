"""The pace of a send: messages per second, shared by every connection of a sender.

A scheduler rather than a bucket: each message is given the next free moment, ``1 / rate``
after the previous one, and the caller sleeps until then. When a provider says we are too fast
(SMTP 421, HTTP 429) :meth:`Pace.slow_down` halves the rate — starting from the rate actually
observed when no limit is configured — and :meth:`Pace.recover` raises it again step by step
after batches that went through untroubled, up to the configured rate (or no limit).

The clock and the sleep are injected, so tests control time instead of waiting.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MIN_RATE = 0.2  # never slower than one message every five seconds
WINDOW = 10.0  # seconds of history for the observed rate
# Messages within this many seconds of a bucket's first are counted in it: a send of thousands of
# messages a second keeps a hundred entries of history, not tens of thousands.
BUCKET = 0.1


class Pace:
    def __init__(
        self,
        rate: float = 0.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = rate  # 0: no limit
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()
        self._seen: deque[tuple[float, int]] = deque()

    def acquire(self, n: int = 1) -> None:
        """Wait until ``n`` more messages may go."""
        with self._lock:
            now = self._clock()
            seen = self._seen
            if seen and now - seen[-1][0] < BUCKET:
                seen[-1] = (seen[-1][0], seen[-1][1] + n)  # (counted in the last bucket)
            else:
                seen.append((now, n))
                while seen[0][0] < now - WINDOW:
                    seen.popleft()
            if not self.rate:
                return
            start = max(self._next, now)
            self._next = start + n / self.rate
            wait = start - now
        if wait > 0:
            self._sleep(wait)

    def observed(self) -> float:
        """Messages per second over the last few seconds."""
        with self._lock:
            if not self._seen:
                return 0.0
            span = max(self._clock() - self._seen[0][0], 1.0)
            return sum(n for _, n in self._seen) / span

    def slow_down(self) -> None:
        current = self.rate or self.observed() or 1.0
        with self._lock:
            self.rate = max(MIN_RATE, current / 2)

    def recover(self) -> None:
        with self._lock:
            if not self.rate or self.rate == self.target:
                return
            raised = self.rate * 1.25
            if self.target and raised >= self.target:
                self.rate = self.target
            elif not self.target and raised >= 1000:
                self.rate = 0.0  # back to no limit
            else:
                self.rate = raised
