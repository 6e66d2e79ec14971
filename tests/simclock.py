"""Simulated time for real APScheduler schedulers: no test sleeps through real minutes.

A :class:`SimulatedClock` is a :class:`digest.schedule.Clock`: when the scheduler's main loop waits
for its next run, the clock jumps straight there; at ``until`` it asks the scheduler to stop.
:func:`apscheduler_reads` makes APScheduler itself (its due-job lookup and its misfire check) read the
same clock, so the real trigger, job store, coalescing and grace-period logic run unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

import apscheduler.executors.base
import apscheduler.schedulers.base

from digest.delivery.base import Backend, OutgoingMessage
from digest.models import DeliveryResult


class SimulatedClock:
    def __init__(self, start: datetime, until: datetime) -> None:
        self._now = start
        self.until = until
        self.on_horizon: Callable[[], None] = lambda: None

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float | None, wake: threading.Event, stopping: Callable[[], bool]) -> None:
        if wake.is_set() or stopping():
            return
        target = self.until if seconds is None else min(self.until, self._now + timedelta(seconds=seconds))
        self._now = max(self._now, target)
        if self._now >= self.until:
            self.on_horizon()


@contextmanager
def apscheduler_reads(clock: Callable[[], SimulatedClock | None]) -> Iterator[None]:
    """While active, APScheduler's ``datetime.now`` is ``clock().now()`` (``clock()`` returns the
    clock of the scheduler being run; the real time when there is none)."""

    class ClockDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            c = clock()
            if c is None:
                return datetime.now(tz)
            return c.now().astimezone(tz) if tz is not None else c.now().replace(tzinfo=None)

    saved = (apscheduler.schedulers.base.datetime, apscheduler.executors.base.datetime)
    apscheduler.schedulers.base.datetime = ClockDatetime  # type: ignore[misc]
    apscheduler.executors.base.datetime = ClockDatetime  # type: ignore[misc]
    try:
        yield
    finally:
        apscheduler.schedulers.base.datetime, apscheduler.executors.base.datetime = saved  # type: ignore[misc]


@dataclass(frozen=True)
class Sent:
    folder: str
    recipient: str
    subject: str
    at: datetime


@dataclass
class RecordingBackend(Backend):
    """Records every message it is given, with the simulated time it was sent at."""

    folder: str
    clock: SimulatedClock
    sent: list[Sent]
    on_batch: Callable[[Sequence[OutgoingMessage]], None] = field(default=lambda _m: None)
    name = "recording"

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        self.on_batch(messages)
        out = []
        for m in messages:
            self.sent.append(Sent(self.folder, m.recipient, m.template.subject, self.clock.now()))
            out.append(DeliveryResult(m.recipient, "sent", m.message_id))
        return out
