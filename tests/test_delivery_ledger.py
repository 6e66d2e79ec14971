"""The ledger's protocol with the memory backend: concurrent senders, take-over after a lease,
subscribers who leave mid-send, retries of failures, the pace, and a streaming dry run."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from deliverykit import FakeClock, addresses, newsletter

from digest.config import Settings
from digest.delivery.ledger import HOST
from digest.delivery.memory import MemoryBackend
from digest.delivery.ratelimit import BUCKET, WINDOW, Pace
from digest.delivery.sender import Sender, SendReport, real_time_from
from digest.models import DeliveryResult
from digest.pipeline import Slot, send_issue
from digest.store import Store
from digest.store.subscribers import SubscribersRepository


def send_through(settings: Settings, store: Store, slot: Slot, backend: MemoryBackend, *, now: datetime) -> SendReport:
    """Send the slot's issue through ``backend``, on real time from ``now``."""
    return send_issue(
        settings, store, slot, now=now, sender=Sender(settings, store, clock=real_time_from(now), backend=backend)
    )


def test_two_senders_at_once_never_send_the_same_delivery(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(1500)
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=subs, now=fixed_now)
    backends = [MemoryBackend(max_batch=50), MemoryBackend(max_batch=50)]
    reports = []
    start = threading.Barrier(2)

    def run(b: MemoryBackend) -> None:
        other = Store(settings.state_url)  # each sender with its own connections
        start.wait()
        reports.append(send_through(settings, other, slot, b, now=fixed_now))

    threads = [threading.Thread(target=run, args=(b,)) for b in backends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a = [r for r, _ in backends[0].sent]
    b = [r for r, _ in backends[1].sent]
    assert a and b, "both senders took part"
    assert not set(a) & set(b)
    assert sorted(a + b) == subs
    assert store.deliveries.counts(slot.key) == {"sent": 1500}
    assert store.issues.get(slot.key).status == "sent"


class Crash(BaseException):
    pass


def with_heartbeat(settings: Settings, seconds: float) -> Settings:
    return settings.model_copy(update={"delivery": settings.delivery.model_copy(update={"lease_seconds": seconds})})


def send_on(settings: Settings, store: Store, slot: Slot, backend: MemoryBackend, clock: FakeClock) -> SendReport:
    """Send on simulated time: waiting moves the clock on at once."""
    sender = Sender(settings, store, clock=clock.now, sleep=clock.sleep, backend=backend)
    return send_issue(settings, store, slot, now=clock.now(), sender=sender)


def test_a_stopped_senders_batch_is_taken_over_after_its_heartbeat(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(120)
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=subs, now=fixed_now)
    settings = with_heartbeat(settings, 5)
    calls = {"n": 0}

    def crash_in_second_batch(m):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 45:
            raise Crash()
        return None

    first = MemoryBackend(crash_in_second_batch, max_batch=40)
    with pytest.raises(Crash):
        send_through(settings, store, slot, first, now=fixed_now)
    # The four messages of the second batch that went out were recorded one by one.
    assert store.deliveries.counts(slot.key) == {"sent": 44, "inflight": 36, "pending": 40}
    # Same process, so nothing but its heartbeat says the first sender stopped: the second sends
    # what is pending, waits while that heartbeat lives, then takes the batch over.
    clock = FakeClock(fixed_now)
    second = MemoryBackend(max_batch=40)
    report = send_on(settings, store, slot, second, clock)
    assert report.outcome == "resumed", report.message
    assert fixed_now + timedelta(seconds=5) <= clock.t <= fixed_now + timedelta(seconds=7)
    assert store.deliveries.counts(slot.key) == {"sent": 120}
    assert store.deliveries.interrupted_total(slot.key) == 36
    sent_twice = {r for r, _ in first.sent} & {r for r, _ in second.sent}
    # Each answered message was durable before the next went out: the crash, striking between
    # messages, repeats none of them (before, the four that went out were sent again).
    assert sent_twice == set()


def test_a_subscriber_who_leaves_mid_send_gets_nothing(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(30)
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=subs, now=fixed_now)
    leaver = subs[25]

    def leave_during_first_batch(m):  # type: ignore[no-untyped-def]
        if m.recipient == subs[0]:
            store.subscribers.set_status(leaver, "unsubscribed")
        return None

    backend = MemoryBackend(leave_during_first_batch, max_batch=10)
    report = send_through(settings, store, slot, backend, now=fixed_now)
    assert report.counts == {"sent": 29, "skipped": 1}
    assert leaver not in {r for r, _ in backend.sent}


def test_failed_deliveries_can_be_retried(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(10)
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=subs, now=fixed_now)
    refuse = {subs[2], subs[5]}
    backend = MemoryBackend(
        lambda m: DeliveryResult(m.recipient, "failed", None, "550 mailbox full") if m.recipient in refuse else None
    )
    report = send_through(settings, store, slot, backend, now=fixed_now)
    assert report.counts == {"sent": 8, "failed": 2}
    assert send_through(settings, store, slot, backend, now=fixed_now).outcome == "already-sent"
    assert store.deliveries.reset_failed(slot.key, now=fixed_now) == 2
    refuse.clear()
    report = send_through(settings, store, slot, backend, now=fixed_now)
    assert report.outcome == "resumed" and report.counts == {"sent": 10}
    assert sorted(r for r, _ in backend.sent) == subs


def test_a_throttle_slows_the_pace(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(40)
    settings, store, slot, _ = newsletter(
        write_config,
        tmp_path,
        backend="outbox",
        subscribers=subs,
        now=fixed_now,
        extra="[delivery.pace]\nmessages_per_second = 100\n",
    )
    throttled = {"left": 10}

    def throttle_first_batch(m):  # type: ignore[no-untyped-def]
        if throttled["left"]:
            throttled["left"] -= 1
            return DeliveryResult(m.recipient, "retry", None, "421 4.7.0 slow down", {"throttle": "1"})
        return None

    clock = FakeClock(fixed_now)
    report = send_issue(
        settings,
        store,
        slot,
        now=fixed_now,
        sender=Sender(
            settings,
            store,
            clock=clock.now,
            backend=MemoryBackend(throttle_first_batch, max_batch=10),
            sleep=clock.sleep,
        ),
    )
    assert report.counts == {"sent": 40}
    paced = [round(s, 4) for s in clock.sleeps if s < 0.1]
    assert 0.01 in paced  # 100 messages/s before the 421
    assert 0.02 in paced  # halved after it


def test_pace_limits_slows_and_recovers() -> None:
    t = {"now": 0.0}
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        t["now"] += s

    pace = Pace(5.0, clock=lambda: t["now"], sleep=sleep)
    for _ in range(6):
        pace.acquire()
    assert t["now"] == pytest.approx(1.0)  # 6 messages at 5/s: the sixth goes at t = 1 s
    pace.slow_down()
    assert pace.rate == 2.5
    for _ in range(10):
        pace.recover()
    assert pace.rate == 5.0
    free = Pace(0.0, clock=lambda: t["now"], sleep=sleep)
    before = len(slept)
    for _ in range(200):
        free.acquire()
    assert len(slept) == before  # no limit, no waiting
    free.slow_down()
    assert 0 < free.rate < 200  # half the observed rate


def test_the_observed_rate_of_a_fast_send_keeps_a_short_history() -> None:
    """With no limit, a send of a thousand messages a second is observed as such (what a
    slow-down halves), from a history of about a hundred entries, not of every message in the
    last ten seconds."""
    t = {"now": 0.0}
    free = Pace(0.0, clock=lambda: t["now"], sleep=lambda s: None)
    for _ in range(20_000):
        free.acquire()
        t["now"] += 0.001
    assert free.observed() == pytest.approx(1000, rel=0.02)
    assert len(free._seen) <= WINDOW / BUCKET + 2
    free.slow_down()
    assert free.rate == pytest.approx(500, rel=0.02)


def test_dry_run_streams_recipients_and_renders_each(write_config, tmp_path: Path, fixed_now, monkeypatch) -> None:
    subs = addresses(250)
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=subs, now=fixed_now)

    def no_lists(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("a dry run must stream, not load every subscriber")

    monkeypatch.setattr(SubscribersRepository, "active_recipients", no_lists)
    monkeypatch.setattr(SubscribersRepository, "all", no_lists)
    report = send_issue(settings, store, slot, now=fixed_now, dry_run=True)
    assert report.outcome == "dry-run"
    assert "would go to 250 subscribers; 250 messages rendered, nothing sent" in report.message
    assert store.issues.get(slot.key) is None


def test_in_flight_deliveries_of_a_sender_in_another_pid_namespace_wait_for_its_heartbeat(
    write_config, tmp_path: Path, fixed_now, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same hostname, a PID that does not exist here (another container): the sender is alive as
    long as its heartbeat says so, and its batch stays its own until then."""
    subs = addresses(30)
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=subs, now=fixed_now)
    beat = timedelta(seconds=5)
    settings = with_heartbeat(settings, beat.total_seconds())
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    other = f"{HOST}:{gone.stdout.strip()}:alive"
    calls = {"n": 0}

    def stalls_in_first_batch(m):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 6:
            raise Crash()  # from here on this sender is "busy elsewhere"; we look at its claim
        return None

    monkeypatch.setattr("digest.delivery.ledger.sender_identity", lambda: other)
    with pytest.raises(Crash):
        send_through(settings, store, slot, MemoryBackend(stalls_in_first_batch, max_batch=10), now=fixed_now)
    monkeypatch.undo()
    held = store.deliveries.counts(slot.key)["inflight"]
    assert held > 0

    # The other sender renews its claim (its heartbeat) 2.5 s in, so it lives past the first 5 s;
    # the second sender, done with what was pending, waits and takes over one heartbeat after that.
    clock = FakeClock(fixed_now)
    renewed_at = fixed_now + beat / 2
    waiting_sleep = clock.sleep

    def sleep(seconds: float) -> None:
        before = clock.t
        waiting_sleep(seconds)
        if before < renewed_at <= clock.t:
            assert store.deliveries.renew_claims(slot.key, other, lease_until=renewed_at + beat) == held

    clock.sleep = sleep  # type: ignore[method-assign]
    report = send_on(settings, store, slot, MemoryBackend(max_batch=10), clock)
    assert report.outcome == "resumed", report.message
    assert renewed_at + beat <= clock.t <= renewed_at + beat + timedelta(seconds=2)
    assert store.deliveries.counts(slot.key) == {"sent": 30}
    assert store.deliveries.interrupted_total(slot.key) == held
