"""The ledger's group commit: the connections of a send queue their outcomes, and the first that
needs its own durable writes everything queued in one transaction; no connection sends more
content before its last outcome is durable (digest.delivery.ledger.GroupCommit)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest
from deliverykit import addresses, newsletter, send_once, smtp_toml
from smtpserver import RecordingHandler, SMTPServer

from digest.config import Settings
from digest.delivery.ledger import GroupCommit, Pending, RecordingFailed
from digest.models import DeliveryResult
from digest.pipeline import send_issue
from digest.slots import Slot
from digest.store import Store
from digest.store.deliveries import OutcomeWriter

NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)


def outcome(email: str) -> Pending:
    return ("claim-1", (DeliveryResult(email, "sent", f"<{email}>"), None), False, NOW)


def test_queued_outcomes_go_in_one_commit_made_by_the_first_waiter() -> None:
    """Outcomes of several connections queue without a transaction; the first wait commits them
    all at once, and the waits it covered make none of their own."""
    commits: list[list[str]] = []
    gc = GroupCommit(lambda items: commits.append([item[1][0].recipient for item in items]))
    tickets = [gc.enqueue(outcome(f"r{i}@example.org")) for i in range(3)]
    assert commits == []  # queued, not durable
    gc.wait(tickets[1])
    assert commits == [["r0@example.org", "r1@example.org", "r2@example.org"]]  # one transaction
    gc.wait(tickets[0])
    gc.wait(tickets[2])
    assert len(commits) == 1
    later = gc.enqueue(outcome("r3@example.org"))
    gc.wait(later)
    assert commits[1:] == [["r3@example.org"]]
    assert gc.commit_queued() == 0  # nothing left, no empty transaction


def test_a_wait_during_anothers_commit_returns_only_once_its_outcome_is_durable() -> None:
    """A connection whose outcome was queued after a commit began waits for that commit, then
    leads the next one: nothing returns before its own outcome is written."""
    started, release = threading.Event(), threading.Event()
    commits: list[list[str]] = []

    def commit(items: list[Pending]) -> None:
        if not commits:
            started.set()
            release.wait(timeout=10)
        commits.append([item[1][0].recipient for item in items])

    gc = GroupCommit(commit)
    first = gc.enqueue(outcome("first@example.org"))
    leader = threading.Thread(target=gc.wait, args=(first,))
    leader.start()
    assert started.wait(timeout=10)
    second = gc.enqueue(outcome("second@example.org"))
    returned = threading.Event()

    def follower() -> None:
        gc.wait(second)
        returned.set()

    t = threading.Thread(target=follower)
    t.start()
    assert not returned.wait(timeout=0.3)  # the first commit holds the leader's place
    release.set()
    leader.join(timeout=10)
    t.join(timeout=10)
    assert returned.is_set()
    assert commits == [["first@example.org"], ["second@example.org"]]


def test_an_error_in_a_commit_reaches_each_of_its_outcomes_and_stops_later_ones() -> None:
    def commit(items: list[Pending]) -> None:
        raise OSError("disk I/O error")

    gc = GroupCommit(commit)
    tickets = [gc.enqueue(outcome(f"r{i}@example.org")) for i in range(2)]
    for ticket in tickets:
        with pytest.raises(RecordingFailed, match="disk I/O error"):
            gc.wait(ticket)
    with pytest.raises(RecordingFailed):  # nothing more is sent whose outcome cannot be kept
        gc.enqueue(outcome("later@example.org"))


def test_close_commits_what_is_queued_and_refuses_later_outcomes() -> None:
    commits: list[int] = []
    gc = GroupCommit(lambda items: commits.append(len(items)))
    for i in range(4):
        gc.enqueue(outcome(f"r{i}@example.org"))
    gc.close()
    assert commits == [4]
    with pytest.raises(RecordingFailed):
        gc.enqueue(outcome("after@example.org"))


def test_a_send_over_several_connections_commits_fewer_times_than_it_sends(
    write_config, tmp_path: Path, fixed_now, monkeypatch
) -> None:
    """Every message is still recorded one by one as answered (durable before its connection
    sends more), yet the outcomes of several connections share a transaction."""
    subs = addresses(300)
    calls: list[int] = []
    real = OutcomeWriter.write

    def counting(self, claim, outcomes, **kw):  # type: ignore[no-untyped-def]
        calls.append(len(outcomes))
        return real(self, claim, outcomes, **kw)

    monkeypatch.setattr(OutcomeWriter, "write", counting)
    report, server, _, _ = send_once(
        write_config, tmp_path, fixed_now, RecordingHandler(pipelining=True), subscribers=subs, connections=4
    )
    assert report.counts == {"sent": 300} and len(server.received) == 300
    assert sum(calls) == 300  # each outcome written once, as it was answered
    assert max(calls) > 1 and len(calls) < 300


class _Watching(RecordingHandler):
    """Tells when the second envelope's recipient is given, and when a second message arrives."""

    def __init__(self, second_rcpt: str) -> None:
        super().__init__(pipelining=True)
        self.second_rcpt = second_rcpt
        self.rcpt_seen = threading.Event()
        self.first_message = threading.Event()
        self.second_message = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address == self.second_rcpt:
            self.rcpt_seen.set()
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    def record(self, envelope) -> None:  # type: ignore[no-untyped-def]
        super().record(envelope)
        self.first_message.set()
        if len(self.received) >= 2:
            self.second_message.set()


class _HeldCommit:
    """Holds the first commit for which ``holds(outcomes, handed)`` is true until the test lets
    it go, and records the hand-over marks every commit writes."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, holds: Callable[[Sequence[object], Sequence[str]], bool]
    ) -> None:
        self.held, self.release = threading.Event(), threading.Event()
        self.marked: list[list[str]] = []
        real = OutcomeWriter.write

        def write(writer, claim, outcomes, *, handed=(), **kw):  # type: ignore[no-untyped-def]
            if handed:
                self.marked.append(list(handed))
            if holds(outcomes, handed) and not self.held.is_set():
                self.held.set()
                self.release.wait(timeout=10)
            return real(writer, claim, outcomes, handed=handed, **kw)

        monkeypatch.setattr(OutcomeWriter, "write", write)

    @contextmanager
    def sending(self, settings: Settings, store: Store, slot: Slot, now: datetime) -> Iterator[None]:
        """Send the issue on a thread; the block runs while the commit is held, then lets it go."""
        sending = threading.Thread(target=lambda: send_issue(settings, store, slot, now=now))
        sending.start()
        try:
            assert self.held.wait(timeout=10)
            yield
        finally:
            self.release.set()
            sending.join(timeout=30)


def test_a_connection_ends_no_content_before_its_last_outcome_is_durable(
    write_config, tmp_path: Path, fixed_now, monkeypatch
) -> None:
    """The wait for durability is put off until the next message's content has gone out but for
    its end-of-data line (the commit overlaps the next envelope's round trip and the content's
    transfer), but no later: while the first outcome's commit is held, the connection gives the
    second envelope and content and then waits; the server gets no second message."""
    subs = addresses(3)
    commit = _HeldCommit(monkeypatch, lambda outcomes, handed: bool(outcomes))  # (an outcome, not a mark)
    handler = _Watching(subs[1])
    with SMTPServer(handler) as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, connections=1), subscribers=subs, now=fixed_now
        )
        with commit.sending(settings, store, slot, fixed_now):
            assert handler.rcpt_seen.wait(timeout=10)  # the next envelope went out meanwhile
            # ... but its content waits for the commit: no second message in a second's time.
            assert not handler.second_message.wait(timeout=1.0)
            assert len(server.received) == 1
        assert len(server.received) == 3
    assert store.deliveries.counts(slot.key) == {"sent": 3}


def test_a_message_is_marked_as_on_its_way_durably_before_its_content_ends(
    write_config, tmp_path: Path, fixed_now, monkeypatch
) -> None:
    """What `digest status` counts after a crash is exactly the messages marked as on their way
    and not answered: so no content may end (and the server take the message) before its mark is
    durable."""
    subs = addresses(2)
    commit = _HeldCommit(monkeypatch, lambda outcomes, handed: bool(handed))
    handler = _Watching(subs[1])
    with SMTPServer(handler) as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, connections=1), subscribers=subs, now=fixed_now
        )
        # The first message's envelope was accepted; its mark is held.
        with commit.sending(settings, store, slot, fixed_now):
            assert not handler.first_message.wait(timeout=1.0)
            assert server.received == []
        assert len(server.received) == 2
    assert commit.marked == [[subs[0]], [subs[1]]]
    assert store.deliveries.counts(slot.key) == {"sent": 2}


def test_a_verbose_send_says_what_its_commits_cost(
    write_config, tmp_path: Path, fixed_now, caplog: pytest.LogCaptureFixture
) -> None:
    """`digest -v send` tells the operator how many commits the outcomes took and the time spent
    in them: where a slow disk shows first."""
    subs = addresses(40)
    with SMTPServer(RecordingHandler(pipelining=True)) as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, connections=4), subscribers=subs, now=fixed_now
        )
        with caplog.at_level("INFO", logger="digest"):
            send_issue(settings, store, slot, now=fixed_now)
    (line,) = [r.getMessage() for r in caplog.records if "made durable" in r.getMessage()]
    m = re.fullmatch(r"issue 2025-W33: (\d+) outcomes and marks made durable in (\d+) commits, [\d.]+ s in them", line)
    assert m is not None, line
    items, commits = int(m.group(1)), int(m.group(2))
    assert items == 80  # an outcome and a mark for each message
    assert 1 <= commits < items
