"""The ledger's group commit: the connections of a send hand their outcomes to one recorder, which
writes everything queued in one transaction and wakes each connection only once its outcome is
durable (digest.delivery.ledger.GroupCommit)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from deliverykit import addresses, newsletter, smtp_toml
from smtpserver import RecordingHandler, SMTPServer

from digest.delivery.ledger import GroupCommit, Pending, RecordingFailed
from digest.models import DeliveryResult
from digest.pipeline import send_issue
from digest.store.deliveries import OutcomeWriter

NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)


def outcome(email: str) -> Pending:
    return ("claim-1", (DeliveryResult(email, "sent", f"<{email}>"), None), False, NOW)


def waiter(gc: GroupCommit, ticket: object, done: threading.Event, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            gc.wait(ticket)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)
        done.set()

    t = threading.Thread(target=run)
    t.start()
    return t


def test_queued_outcomes_go_in_one_commit_and_waiters_wake_only_after_it() -> None:
    commits: list[list[str]] = []
    done = [threading.Event() for _ in range(3)]
    released_early: list[bool] = []

    def commit(items: list[Pending]) -> None:
        released_early.append(any(e.is_set() for e in done))
        commits.append([item[1][0].recipient for item in items])

    gc = GroupCommit(commit)
    tickets = [gc.enqueue(outcome(f"r{i}@example.org")) for i in range(3)]
    errors: list[BaseException] = []
    threads = [waiter(gc, t, e, errors) for t, e in zip(tickets, done)]
    assert not any(e.is_set() for e in done)  # queued, not durable: nobody goes on

    assert gc.commit_queued() == 3
    for t in threads:
        t.join(timeout=10)
    assert commits == [["r0@example.org", "r1@example.org", "r2@example.org"]]  # one transaction
    assert released_early == [False]
    assert all(e.is_set() for e in done) and not errors
    assert gc.commit_queued() == 0  # nothing left, no empty transaction


def test_an_error_in_the_recorder_reaches_every_waiter_and_stops_later_outcomes() -> None:
    def commit(items: list[Pending]) -> None:
        raise OSError("disk I/O error")

    gc = GroupCommit(commit)
    tickets = [gc.enqueue(outcome(f"r{i}@example.org")) for i in range(2)]
    done = [threading.Event() for _ in tickets]
    errors: list[BaseException] = []
    threads = [waiter(gc, t, e, errors) for t, e in zip(tickets, done)]
    gc.commit_queued()
    for t in threads:
        t.join(timeout=10)
    assert all(e.is_set() for e in done)  # no hang
    assert len(errors) == 2 and all(isinstance(e, RecordingFailed) for e in errors)
    assert "disk I/O error" in str(errors[0])
    with pytest.raises(RecordingFailed):  # nothing more is sent whose outcome cannot be kept
        gc.enqueue(outcome("later@example.org"))


def test_stop_drains_what_is_queued() -> None:
    commits: list[int] = []
    gate = threading.Event()

    def commit(items: list[Pending]) -> None:
        gate.wait(timeout=10)
        commits.append(len(items))

    gc = GroupCommit(commit)
    gc.start()
    submitted = [threading.Thread(target=gc.submit, args=(outcome(f"r{i}@example.org"),)) for i in range(4)]
    for t in submitted:
        t.start()
    gate.set()
    gc.stop()  # returns once everything queued is committed
    for t in submitted:
        t.join(timeout=10)
    assert sum(commits) == 4
    assert not any(t.is_alive() for t in submitted)
    with pytest.raises(RecordingFailed):
        gc.enqueue(outcome("after@example.org"))


def test_a_send_over_several_connections_commits_fewer_times_than_it_sends(
    write_config, tmp_path: Path, fixed_now, monkeypatch
) -> None:
    """Every message is still recorded one by one as answered (durable before its connection goes
    on), yet concurrent answers share a transaction."""
    subs = addresses(300)
    calls: list[int] = []
    real = OutcomeWriter.write
    real_enqueue = GroupCommit.enqueue
    queued = threading.Condition()
    enqueued: list[int] = []

    def enqueue(self, item):  # type: ignore[no-untyped-def]
        ticket = real_enqueue(self, item)
        with queued:
            enqueued.append(1)
            queued.notify_all()
        return ticket

    def counting(self, claim, outcomes, **kw):  # type: ignore[no-untyped-def]
        if not calls:
            # The first commit is slow: the three other connections answer meanwhile and queue.
            with queued:
                queued.wait_for(lambda: len(enqueued) >= 4, timeout=10)
        calls.append(len(outcomes))
        return real(self, claim, outcomes, **kw)

    monkeypatch.setattr(OutcomeWriter, "write", counting)
    monkeypatch.setattr(GroupCommit, "enqueue", enqueue)
    with SMTPServer() as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, connections=4), subscribers=subs, now=fixed_now
        )
        report = send_issue(settings, store, slot, now=fixed_now)
        assert len(server.received) == 300
    assert report.counts == {"sent": 300}
    per_message = [n for n in calls if n]
    assert sum(per_message) == 300  # each outcome written once, as it was answered
    assert per_message[:2] == [1, 3]  # the three answered during the first commit share the next
    assert len(per_message) < 300


class _Watching(RecordingHandler):
    """Tells when the second envelope's recipient is given, and when a second message arrives."""

    def __init__(self, second_rcpt: str) -> None:
        super().__init__(pipelining=True)
        self.second_rcpt = second_rcpt
        self.rcpt_seen = threading.Event()
        self.second_message = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address == self.second_rcpt:
            self.rcpt_seen.set()
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    def record(self, envelope) -> None:  # type: ignore[no-untyped-def]
        super().record(envelope)
        if len(self.received) >= 2:
            self.second_message.set()


def test_a_connection_sends_no_content_before_its_last_outcome_is_durable(
    write_config, tmp_path: Path, fixed_now, monkeypatch
) -> None:
    """The wait for durability is put off until the server is ready for the next message's
    content (the commit overlaps the next envelope's round trip), but no later: while the first
    outcome's commit is held, the connection gives the second envelope and then waits; the server
    gets no second message."""
    subs = addresses(3)
    real = OutcomeWriter.write
    held = threading.Event()
    release = threading.Event()

    def slow_first(self, claim, outcomes, **kw):  # type: ignore[no-untyped-def]
        if not held.is_set():
            held.set()
            release.wait(timeout=10)
        return real(self, claim, outcomes, **kw)

    monkeypatch.setattr(OutcomeWriter, "write", slow_first)
    handler = _Watching(subs[1])
    with SMTPServer(handler) as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, connections=1), subscribers=subs, now=fixed_now
        )
        sending = threading.Thread(target=lambda: send_issue(settings, store, slot, now=fixed_now))
        sending.start()
        try:
            assert held.wait(timeout=10)
            assert handler.rcpt_seen.wait(timeout=10)  # the next envelope went out meanwhile
            # ... but its content waits for the commit: no second message in a second's time.
            assert not handler.second_message.wait(timeout=1.0)
            assert len(server.received) == 1
        finally:
            release.set()
            sending.join(timeout=30)
        assert len(server.received) == 3
    assert store.deliveries.counts(slot.key) == {"sent": 3}
