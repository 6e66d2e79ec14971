"""The ledger's protocol with the memory backend: concurrent senders, take-over after a lease,
subscribers who leave mid-send, retries of failures, the pace, and a streaming dry run."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from deliverykit import FakeClock, addresses, newsletter

from digest.delivery.memory import MemoryBackend
from digest.delivery.ratelimit import Pace
from digest.models import DeliveryResult
from digest.pipeline import send_issue
from digest.store import Store
from digest.store.subscribers import SubscribersRepository


def test_two_senders_at_once_never_send_the_same_delivery(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(1500)
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=subs, now=fixed_now)
    backends = [MemoryBackend(max_batch=50), MemoryBackend(max_batch=50)]
    reports = []
    start = threading.Barrier(2)

    def run(b: MemoryBackend) -> None:
        other = Store(settings.state_url)  # each sender with its own connections
        start.wait()
        reports.append(send_issue(settings, other, slot, now=fixed_now, backend=b))

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


def test_a_stopped_senders_batch_is_taken_over_after_its_lease(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(120)
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=subs, now=fixed_now)
    calls = {"n": 0}

    def crash_in_second_batch(m):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 45:
            raise Crash()
        return None

    first = MemoryBackend(crash_in_second_batch, max_batch=40)
    with pytest.raises(Crash):
        send_issue(settings, store, slot, now=fixed_now, backend=first)
    assert store.deliveries.counts(slot.key) == {"sent": 40, "inflight": 40, "pending": 40}
    # Same process, so the sender looks alive: its batch waits for the lease to end.
    second = MemoryBackend(max_batch=40)
    report = send_issue(settings, store, slot, now=fixed_now, backend=second)
    assert report.outcome == "incomplete" and "40 in flight in another sender" in report.message
    later = fixed_now + timedelta(seconds=settings.delivery.lease_seconds + 1)
    report = send_issue(settings, store, slot, now=later, backend=second)
    assert report.outcome == "resumed", report.message
    assert store.deliveries.counts(slot.key) == {"sent": 120}
    assert store.deliveries.interrupted_total(slot.key) == 40
    sent_twice = {r for r, _ in first.sent} & {r for r, _ in second.sent}
    assert len(sent_twice) == 4  # the batch's messages that went out before the crash


def test_a_subscriber_who_leaves_mid_send_gets_nothing(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(30)
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=subs, now=fixed_now)
    leaver = subs[25]

    def leave_during_first_batch(m):  # type: ignore[no-untyped-def]
        if m.recipient == subs[0]:
            store.subscribers.set_status(leaver, "unsubscribed")
        return None

    backend = MemoryBackend(leave_during_first_batch, max_batch=10)
    report = send_issue(settings, store, slot, now=fixed_now, backend=backend)
    assert report.counts == {"sent": 29, "skipped": 1}
    assert leaver not in {r for r, _ in backend.sent}


def test_failed_deliveries_can_be_retried(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(10)
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=subs, now=fixed_now)
    refuse = {subs[2], subs[5]}
    backend = MemoryBackend(
        lambda m: DeliveryResult(m.recipient, "failed", None, "550 mailbox full") if m.recipient in refuse else None
    )
    report = send_issue(settings, store, slot, now=fixed_now, backend=backend)
    assert report.counts == {"sent": 8, "failed": 2}
    assert send_issue(settings, store, slot, now=fixed_now, backend=backend).outcome == "already-sent"
    assert store.deliveries.reset_failed(slot.key, now=fixed_now) == 2
    refuse.clear()
    report = send_issue(settings, store, slot, now=fixed_now, backend=backend)
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
        backend=MemoryBackend(throttle_first_batch, max_batch=10),
        clock=clock.now,
        sleep=clock.sleep,
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
