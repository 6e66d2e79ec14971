"""The send engine's steps, one method at a time, with the memory backend and a fake clock."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from deliverykit import FakeClock, addresses, newsletter

from digest.config import Settings
from digest.delivery.memory import MemoryBackend
from digest.delivery.sender import Sender, SendProgress, SendReport, dry_run_pending
from digest.delivery.status import issue_status, recent_issues
from digest.errors import DeliveryError
from digest.models import DeliveryResult
from digest.pipeline import BuiltIssue, Slot, build_issue
from digest.store import Store


def _opened(
    write_config, tmp_path: Path, now: datetime, subs: list[str], backend: MemoryBackend
) -> tuple[Settings, Store, Slot, BuiltIssue, Sender]:  # type: ignore[no-untyped-def]
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=subs, now=now)
    built = build_issue(settings, store, slot)
    sender = Sender(settings, store, clock=FakeClock(now).now, backend=backend)
    assert sender.finished(slot.key) is None and not sender.opened(slot.key)
    assert sender.open(built.issue, built.rendered, now=now)
    return settings, store, slot, built, sender


def test_an_issue_is_opened_once_and_its_frozen_recipients_are_delivered(
    write_config, tmp_path: Path, fixed_now: datetime
) -> None:
    subs = addresses(7)
    backend = MemoryBackend(max_batch=3)
    settings, store, slot, built, sender = _opened(write_config, tmp_path, fixed_now, subs, backend)
    # A second opening (another process got there first) changes nothing.
    assert not sender.open(built.issue, built.rendered, now=fixed_now)
    assert sender.opened(slot.key) and store.deliveries.counts(slot.key) == {"pending": 7}
    # Someone who subscribes now is not part of this issue: its recipients were frozen.
    store.subscribers.add([("late@example.org", None)], now=fixed_now)

    seen: list[SendProgress] = []
    report = sender.deliver(slot.key, resumed=False, progress=seen.append)
    assert report.outcome == "sent" and report.counts == {"sent": 7}
    assert sorted(to for to, _ in backend.sent) == subs and backend.batches == [3, 3, 1]
    assert [(p.total, p.sent, p.done_this_run) for p in seen] == [(7, 3, 3), (7, 6, 6), (7, 7, 7)]
    assert sender.finished(slot.key) == SendReport(
        slot.key, "already-sent", "issue 2025-W33 was already sent (7 delivered); nothing to send", {"sent": 7}
    )


def test_a_stopped_send_keeps_the_rest_pending_and_a_resumed_one_finishes(
    write_config, tmp_path: Path, fixed_now: datetime
) -> None:
    backend = MemoryBackend(max_batch=2)
    _, store, slot, _, sender = _opened(write_config, tmp_path, fixed_now, addresses(5), backend)
    batches = iter([False, True])
    stopped = sender.deliver(slot.key, resumed=False, stop=lambda: next(batches))
    assert stopped.outcome == "incomplete"
    assert stopped.message == "issue 2025-W33: 2 delivered, 3 to retry, 0 failed; run `digest send` again to retry"
    assert store.deliveries.counts(slot.key) == {"sent": 2, "pending": 3}
    assert dry_run_pending(sender, slot.key, now=fixed_now).counts == {"pending": 3}
    resumed = sender.deliver(slot.key, resumed=True)
    assert resumed.message == "issue 2025-W33 resumed and finished: 5 delivered, 0 failed"
    assert len(backend.sent) == 5


def test_the_status_report_shows_counts_failures_and_retries(write_config, tmp_path: Path, fixed_now: datetime) -> None:
    refused, later = "reader00001@example.org", "reader00002@example.org"

    def answer(m):  # type: ignore[no-untyped-def]
        if m.recipient == refused:
            return DeliveryResult(m.recipient, "failed", None, "550 5.1.1 no such user")
        if m.recipient == later:
            return DeliveryResult(m.recipient, "retry", None, "451 4.3.0 try later")
        return None

    _, store, slot, _, sender = _opened(write_config, tmp_path, fixed_now, addresses(4), MemoryBackend(answer))
    # No waiting for the retry: stop after the first batch.
    batches = iter([False, True])
    sender.deliver(slot.key, resumed=False, stop=lambda: next(batches))
    (summary,) = recent_issues(store)
    assert (summary.key, summary.status, summary.counts) == (
        "2025-W33",
        "sending",
        {"failed": 1, "retry": 1, "sent": 2},
    )
    status = issue_status(store, slot.key)
    assert status is not None and status.total == 4 and status.interrupted == 0
    assert [(d.email, d.detail) for d in status.failed] == [(refused, "550 5.1.1 no such user")]
    (retry,) = status.retrying
    assert retry.email == later and retry.attempts == 1 and retry.next_attempt is not None
    assert issue_status(store, "1999-W01") is None


def test_copies_go_outside_the_ledger_and_an_undelivered_test_copy_is_an_error(
    write_config, tmp_path: Path, fixed_now: datetime
) -> None:
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=[], now=fixed_now)
    built = build_issue(settings, store, slot)
    backend = MemoryBackend(
        lambda m: DeliveryResult(m.recipient, "failed", None, "550 no") if "bad" in m.recipient else None
    )
    sender = Sender(settings, store, clock=FakeClock(fixed_now).now, backend=backend)
    results = sender.send_copies(
        slot.key, built.rendered, ["ed@example.org"], now=fixed_now, subject_prefix="[PREVIEW] ", folder="preview"
    )
    assert [r.status for r in results] == ["sent"] and store.issues.get(slot.key) is None
    with pytest.raises(DeliveryError, match="test copy to bad@example.org not delivered: 550 no"):
        sender.send_test_copy(slot.key, built.rendered, "bad@example.org", now=fixed_now)


def test_without_a_backend_each_issue_gets_the_configured_one(
    write_config, tmp_path: Path, fixed_now: datetime
) -> None:
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=[], now=fixed_now)
    built = build_issue(settings, store, slot)
    sender = Sender(settings, store, clock=FakeClock(fixed_now).now)
    sender.send_copies(slot.key, built.rendered, ["ed@example.org"], now=fixed_now, subject_prefix="", folder="test")
    # The outbox backend writes each issue (here: the test copies of it) to its own folder.
    assert [p.name for p in (tmp_path / "outbox").iterdir()] == ["test-2025-W33"]


def test_each_message_is_addressed_to_the_subscriber_by_name(write_config, tmp_path: Path, fixed_now: datetime) -> None:
    backend = MemoryBackend()
    settings, store, slot, _ = newsletter(write_config, tmp_path, backend="outbox", subscribers=[], now=fixed_now)
    store.subscribers.add([("ann@example.org", "Ann Lee"), ("bob@example.org", None)], now=fixed_now)
    built = build_issue(settings, store, slot)
    sender = Sender(settings, store, clock=FakeClock(fixed_now).now, backend=backend)
    assert sender.open(built.issue, built.rendered, now=fixed_now)
    assert sender.deliver(slot.key, resumed=False).outcome == "sent"
    to = {addr: raw.split(b"\r\nTo: ", 1)[1].split(b"\r\n", 1)[0] for addr, raw in backend.sent}
    assert to == {"ann@example.org": b"Ann Lee <ann@example.org>", "bob@example.org": b"bob@example.org"}
