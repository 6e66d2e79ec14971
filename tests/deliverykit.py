"""Helpers for the delivery tests: a controllable clock, a newsletter with articles and
subscribers ready to send, one send to a test SMTP server, a send that retries on that clock,
and a record of what the SMTP connections write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import write_article
from smtpserver import RecordingHandler, SMTPServer

from digest.config import Settings, load_config
from digest.delivery.sender import Sender, SendReport
from digest.delivery.smtp_lanes import LaneLoop
from digest.pipeline import Slot, due_slot, ingest, send_issue, sync_subscribers
from digest.store import Store


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self, start: datetime) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += timedelta(seconds=seconds)


def addresses(n: int, domain: str = "example.org") -> list[str]:
    return [f"reader{i:05d}@{domain}" for i in range(n)]


def newsletter(
    write_config: Callable[..., Path],
    tmp_path: Path,
    *,
    backend: str = "smtp",
    extra: str = "",
    subscribers: list[str],
    now: datetime,
) -> tuple[Settings, Store, Slot, Path]:
    """A config with three articles and the given subscribers, ingested and synced."""
    path = write_config(extra, subscribers=subscribers)
    path.write_text(path.read_text().replace('backend = "outbox"', f'backend = "{backend}"'))
    for i in range(3):
        write_article(
            tmp_path / "content",
            f"a{i}.md",
            title=f"Article number {i} <about> & more",
            date=f"2025-08-0{5 + i}T10:00:00+01:00",
            body=f"The lead paragraph of article {i} says what it is about. It goes on a little.\n\nSecond paragraph.",
            extra=f"url: https://news.example.org/a{i}?x=1&y=2\n",
        )
    settings = load_config(path)
    store = Store(settings.state_url)
    ingest(settings, store, now=now)
    sync_subscribers(settings, store, now=now)
    return settings, store, due_slot(settings, now), path


def smtp_toml(port: int, *, connections: int = 2, security: str = "none", more: str = "") -> str:
    return f'[delivery.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "{security}"\nconnections = {connections}\n{more}\n'


def send_once(
    write_config: Callable[..., Path],
    tmp_path: Path,
    now: datetime,
    handler: RecordingHandler,
    *,
    subscribers: list[str],
    connections: int = 1,
    more: str = "",
    clock: FakeClock | None = None,
) -> tuple[SendReport, SMTPServer, Store, Slot]:
    """Send the issue once to an SMTP server run by ``handler`` (``more``: further settings, after
    the SMTP section; ``clock``: the sender's time, on which its waits pass); the server is
    stopped on return (what it received stays readable)."""
    with SMTPServer(handler) as server:
        settings, store, slot, _ = newsletter(
            write_config,
            tmp_path,
            extra=smtp_toml(server.port, connections=connections) + more,
            subscribers=subscribers,
            now=now,
        )
        sender = None if clock is None else Sender(settings, store, clock=clock.now, sleep=clock.sleep)
        report = send_issue(settings, store, slot, now=now, sender=sender)
    return report, server, store, slot


def send_with_retries(
    write_config: Callable[..., Path],
    tmp_path: Path,
    now: datetime,
    handler: RecordingHandler,
    *,
    subscribers: list[str],
    connections: int,
    max_attempts: int,
) -> tuple[SendReport, FakeClock]:
    """Send the issue to an SMTP server run by ``handler``; the retries wait on a FakeClock (the
    returned one) until every delivery is decided."""
    clock = FakeClock(now)
    retry = f"[delivery.retry]\nmax_attempts = {max_attempts}\nbase_delay = 2\nmax_delay = 60\n"
    report, *_ = send_once(
        write_config, tmp_path, now, handler, subscribers=subscribers, connections=connections, more=retry, clock=clock
    )
    return report, clock


def count_writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write the SMTP connections make from now on, in order (filled as they happen)."""
    writes: list[bytes] = []
    original = LaneLoop._send

    def send(self: LaneLoop, lane: Any, data: bytes) -> None:
        writes.append(bytes(data))  # (a held content is a memoryview)
        original(self, lane, data)

    monkeypatch.setattr(LaneLoop, "_send", send)
    return writes
