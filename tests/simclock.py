"""Simulated time for the scheduler: no test sleeps through real minutes.

A :class:`SimulatedClock` is a :class:`digest.clock.Clock`: when the scheduler's loop waits for
its next run, the clock jumps straight there; at ``until`` it asks the scheduler to stop. The
scheduler reads the time only from its clock, so the real APScheduler triggers and job store run
unchanged under simulated time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

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
