"""Exactly-once bookkeeping: one row per issue × recipient, and the protocol that moves it.

When an issue's send starts, its active subscribers are frozen into deliveries (``pending``).
A sender then works in batches:

1. **claim** — in one transaction, up to ``batch_size`` due deliveries (``pending``, or ``retry``
   whose next attempt has come) become ``inflight``, stamped with the sender's identity
   (host:pid:nonce), a claim id and a lease. The UPDATE re-checks each row's status, so two
   senders resuming the same issue at once never hold the same delivery.
2. **send** the batch through the backend; each message's outcome is **made durable as soon as
   the server answered it**, before that connection ends its next message's content (the
   end-of-data line, without which no server accepts the message; backends that hand over a
   whole batch in one request — the e-mail services — record the batch when the request
   returns). The connections queue their outcomes (a :class:`GroupCommit`) and go on with the
   next envelope and content; before they end that content they wait until their outcome is
   durable, and the first such wait writes everything queued by then in one transaction. So N
   connections cost one commit, not N, and the commit overlaps the next content's transfer.
3. **record** — what was not recorded one by one becomes ``sent``, ``failed`` (permanent, with
   the server's words) or ``retry`` (transient, with its next attempt time; after
   ``max_attempts`` it becomes ``failed`` too).

If a batch cannot go at all (bad credentials), its claim is released back to ``pending`` with
nothing marked sent.

**Heartbeats.** A claim carries a lease (``delivery.lease_seconds``) that its sender renews while
it lives (as messages go out and with each claim). Another sender takes over in-flight
deliveries only after that lease expired — never by guessing from a process id, which means
nothing across containers that share a hostname.

**The in-flight bound.** A sender that dies (SIGKILL, power loss) mid-batch leaves the rest of
its claim ``inflight``. Once its heartbeat expired the next run gives those back as pending and
sends them. Since every answered message was recorded before its connection went on, only the
messages being transferred at the moment of the crash can reach a recipient twice: **at most one
per connection** (``delivery.smtp.connections``) per crash, or one request's batch for an e-mail
service. A backend that reports each message right before its content goes out (SMTP) has it
marked ``handed`` first, in the same commit as the connection's previous outcome; only handed,
unanswered deliveries count as ``interrupted`` when taken over. For the others the whole claim
counts. So ``interrupted`` is an upper bound on the duplicates of that issue — for SMTP, the
exact set of messages that may have arrived twice — and ``digest status`` reports it.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import NamedTuple

from digest.config import RetrySettings
from digest.delivery.base import NotDurable
from digest.errors import StateError
from digest.models import DeliveryResult
from digest.store import Store, state_error_line
from digest.store.deliveries import OutcomeWriter

HOST = socket.gethostname()


def sender_identity() -> str:
    return f"{HOST}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Claim:
    id: str
    rows: list[tuple[str, str | None, int]]  # email, name, attempts so far
    # One draw per claim: the retries of a batch stay together (one request for an API).
    jitter: float = 0.0
    # Recipients whose outcome is already recorded (one by one, as each message went out).
    recorded: set[str] = field(default_factory=set)

    @cached_property
    def attempts(self) -> dict[str, int]:
        """Attempts so far by recipient (built once: looked up for every answered message)."""
        return {email: n for email, _name, n in self.rows}


@dataclass
class Recorded:
    sent: int = 0
    failed: int = 0
    retry: int = 0
    throttled: bool = False


class HandOver(NamedTuple):
    """A claimed delivery whose message is about to go out (see :meth:`Ledger.hand_over`)."""

    recipient: str


# One item on its way to the database: claim id, (result, next attempt) or a HandOver, bounced or
# not, when.
Pending = tuple[str, tuple[DeliveryResult, datetime | None] | HandOver, bool, datetime]


class RecordingFailed(NotDurable):
    """The recorder could not make an outcome durable; the connection that waited for it stops."""


class _Ticket:
    __slots__ = ("seq",)

    def __init__(self, seq: int) -> None:
        self.seq = seq


class GroupCommit:
    """The group commit of a send's connections, with no thread of its own. A connection queues
    its outcome (:meth:`enqueue`) and goes on with the next envelope; before it ends that
    message's content it waits (:meth:`wait`) until the outcome is durable. The first waiter whose
    outcome is not durable yet becomes the leader: it commits everything queued by then — its own
    and the other connections' outcomes — in one transaction (``commit``). Waiters that leader
    covered go on without a transaction of their own; the others wait for it to finish and lead
    the next one. So N connections share one commit, and no outcome ever waits on a thread
    switch to a recorder and back.

    An error in ``commit`` reaches each outcome of that transaction as :class:`RecordingFailed`,
    and every later outcome fails at once (nothing more is sent whose outcome could not be kept).
    :meth:`close` commits what is still queued."""

    def __init__(self, commit: Callable[[list[Pending]], None]) -> None:
        self._commit = commit
        self._lock = threading.Lock()  # the queue and the counters
        self._leader = threading.Lock()  # held by the connection that is committing
        self._queue: list[Pending] = []
        self._queued = 0  # sequence number of the last outcome queued
        self._durable = 0  # ... and of the last one committed (or failed)
        self._failed_from = 0  # outcomes from this sequence number on failed (0: none)
        self._error: BaseException | None = None
        self._closed = False
        # What the commits cost: how many, covering how many items, and their seconds.
        self.commits = 0
        self.items = 0
        self.seconds = 0.0

    def close(self) -> None:
        """Commit what is queued; later outcomes are refused."""
        with self._leader:
            self.commit_queued()
            with self._lock:
                self._closed = True

    def enqueue(self, item: Pending) -> _Ticket:
        with self._lock:
            if self._error is not None:
                raise RecordingFailed(f"delivery outcomes can no longer be recorded: {self._error}")
            if self._closed:
                raise RecordingFailed("the send's recording has ended")
            self._queue.append(item)
            self._queued += 1
            return _Ticket(self._queued)

    def wait(self, ticket: _Ticket) -> None:
        """Return once the ticket's outcome is durable (committing it, and whatever else is
        queued, if no other connection is doing so); raise RecordingFailed if it cannot be."""
        while self._durable < ticket.seq:
            with self._leader:
                if self._durable < ticket.seq:
                    self.commit_queued()
        if self._failed_from and ticket.seq >= self._failed_from:
            raise RecordingFailed(f"a delivery outcome could not be recorded: {self._error}")

    def commit_queued(self) -> int:
        """Commit everything queued in one transaction; returns how many. Called by the leader
        (holding the leader lock), or by a test driving the steps."""
        with self._lock:
            batch, self._queue = self._queue, []
            last = self._queued
        if not batch:
            return 0
        started = time.perf_counter()
        try:
            self._commit(batch)
        except BaseException as exc:
            with self._lock:
                if self._error is None:
                    self._error = exc
                    self._failed_from = last - len(batch) + 1
                self._durable = last
            if not isinstance(exc, Exception):
                raise
            return len(batch)
        with self._lock:
            self._durable = last
            self.commits += 1
            self.items += len(batch)
            self.seconds += time.perf_counter() - started
        return len(batch)


class Ledger:
    def __init__(
        self,
        store: Store,
        key: str,
        *,
        retry: RetrySettings,
        lease_seconds: float,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.key = key
        self.retry = retry
        self.lease = timedelta(seconds=lease_seconds)
        self.rng = rng
        self.owner = sender_identity()
        self._lock = threading.Lock()
        self._renewed_at: datetime | None = None
        self._recorder: GroupCommit | None = None
        #: Of the last recording: commits, outcomes and marks they covered, seconds in them.
        self.commit_stats = (0, 0, 0.0)

    @contextmanager
    def recording(self) -> Iterator[None]:
        """While open, outcomes are group-committed (:class:`GroupCommit`, through the store's
        fast outcome writer) instead of a transaction per message; closing commits what is left."""
        writer = self.store.deliveries.outcome_writer(self.key)
        recorder = GroupCommit(lambda items: self._commit_group(items, writer))
        self._recorder = recorder
        try:
            yield
        finally:
            self._recorder = None
            recorder.close()
            writer.close()
            self.commit_stats = (recorder.commits, recorder.items, recorder.seconds)

    def _commit_group(self, items: list[Pending], writer: OutcomeWriter | None = None) -> None:
        """Write queued outcomes: one transaction for each claim among them (one, in practice:
        a sender's batches go one after another). Through ``writer`` (the recorder's own fast
        connection) unless a bounce must also mark its subscriber."""
        groups: dict[str, tuple[list[tuple[DeliveryResult, datetime | None]], list[str], list[str]]] = {}
        for claim_id, item, bounced, _when in items:
            outcomes, bounces, handed = groups.setdefault(claim_id, ([], [], []))
            if isinstance(item, HandOver):
                handed.append(item.recipient)
                continue
            outcomes.append(item)
            if bounced:
                bounces.append(item[0].recipient)
        now = max(when for *_, when in items)
        try:
            for claim_id, (outcomes, bounces, handed) in groups.items():
                if writer is not None and not bounces:
                    writer.write(claim_id, outcomes, now=now, handed=handed)
                else:
                    self.store.deliveries.record(self.key, claim_id, outcomes, now=now, bounced=bounces, handed=handed)
        except Exception as exc:
            # What reaches the connections (and the operator) is the store's one line: never the
            # statement, never a subscriber's address.
            line = state_error_line(exc)
            if line is None:
                raise
            raise StateError(line) from None

    def take_over_stopped(self, now: datetime) -> int:
        """Give back as pending the in-flight deliveries of senders that stopped: whose heartbeat
        (the claim's lease, renewed while the sender lives) has expired. Returns how many; those
        that were on their way are counted as interrupted (each may be one duplicate). A sender is
        never judged gone from its process id: one in another PID namespace on the same host (a
        second container) would look dead and be robbed."""
        n = 0
        for owner, lease_until, _count in self.store.deliveries.inflight_owners(self.key):
            if owner == self.owner:
                continue
            if lease_until is not None and lease_until <= now:
                n += self.store.deliveries.reclaim_interrupted(self.key, owner, now=now)
        return n

    def beat(self, now: datetime) -> None:
        """The heartbeat: extend the lease of this sender's in-flight deliveries, when a third of
        it has passed since the last renewal, so no other sender takes over a live batch."""
        with self._lock:
            if self._renewed_at is not None and now - self._renewed_at < self.lease / 3:
                return
            self._renewed_at = now
        self.store.deliveries.renew_claims(self.key, self.owner, lease_until=now + self.lease)

    def inflight_elsewhere(self) -> int:
        return sum(n for owner, _, n in self.store.deliveries.inflight_owners(self.key) if owner != self.owner)

    def claim(self, limit: int, now: datetime, *, each_handed_over: bool = False) -> Claim:
        """Claim up to ``limit`` due deliveries. ``each_handed_over``: the backend reports each
        message before its content goes out (:meth:`hand_over`), so only those count as on their
        way; otherwise every claimed delivery does, from the start."""
        cid = uuid.uuid4().hex
        rows = self.store.deliveries.claim(
            self.key,
            owner=self.owner,
            claim=cid,
            limit=limit,
            now=now,
            lease_until=now + self.lease,
            handed=not each_handed_over,
        )
        with self._lock:
            self._renewed_at = now
        return Claim(cid, rows, self.rng())

    def release(self, claim: Claim, now: datetime) -> None:
        self.store.deliveries.release_claim(self.key, claim.id, now=now)

    def backoff(self, attempt: int, retry_after: float | None, jitter: float) -> float:
        """Seconds before attempt ``attempt + 1``: exponential with jitter (half fixed, half
        random; ``jitter`` in [0, 1)), never sooner than the service's Retry-After."""
        r = self.retry
        delay = min(r.max_delay, r.base_delay * 2 ** max(attempt - 1, 0))
        delay = delay / 2 + jitter * delay / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, r.max_delay))
        return float(delay)

    def _outcome(
        self, claim: Claim, r: DeliveryResult, attempts: int, now: datetime, tally: Recorded
    ) -> tuple[DeliveryResult, datetime | None]:
        """What to write for one result (a retry gets its next attempt time, or becomes a failure
        after ``max_attempts``), counted into ``tally``."""
        extra = r.extra or {}
        if extra.get("throttle"):
            tally.throttled = True
        if r.status == "retry":
            tried = attempts + 1
            if tried < self.retry.max_attempts:
                after = extra.get("retry_after")
                delay = self.backoff(tried, float(after) if after is not None else None, claim.jitter)
                tally.retry += 1
                return r, now + timedelta(seconds=delay)
            r = DeliveryResult(r.recipient, "failed", r.message_id, f"gave up after {tried} attempts; last: {r.detail}")
        if r.status == "failed":
            tally.failed += 1
        else:
            tally.sent += 1
        return r, None

    def _queue(self, item: Pending) -> Callable[[], None]:
        """Queue ``item`` for the group commit and return the wait for it to be durable; outside
        :meth:`recording` it is written at once (and the wait returns at once)."""
        recorder = self._recorder
        if recorder is None:
            self._commit_group([item])
            return lambda: None
        ticket = recorder.enqueue(item)
        return lambda: recorder.wait(ticket)  # raises RecordingFailed when it could not be kept

    def hand_over(self, claim: Claim, recipient: str, now: datetime) -> Callable[[], None]:
        """Queue the mark that ``recipient``'s message is about to go out and return the wait for
        it to be durable (the content must not end before): after a crash, exactly the marked
        deliveries without an outcome may have arrived, which is what ``digest status`` counts."""
        return self._queue((claim.id, HandOver(recipient), False, now))

    def note(self, claim: Claim, result: DeliveryResult, now: datetime) -> Callable[[], None]:
        """Queue one message's outcome for the next group commit and return the wait for it to be
        durable: its connection calls that before it ends the next message's content (a crash
        then repeats only what was in flight)."""
        attempts = claim.attempts.get(result.recipient, 0)
        outcome = self._outcome(claim, result, attempts, now, Recorded())
        bounced = outcome[0].status == "failed" and bool((result.extra or {}).get("bounce"))
        wait = self._queue((claim.id, outcome, bounced, now))

        def durable() -> None:
            wait()
            with self._lock:
                claim.recorded.add(result.recipient)
            self.beat(now)

        return durable

    def record(self, claim: Claim, results: Sequence[DeliveryResult], now: datetime) -> Recorded:
        """Record a batch's outcomes (those not recorded one by one already) and count them all."""
        attempts = claim.attempts
        outcomes: list[tuple[DeliveryResult, datetime | None]] = []
        bounced: list[str] = []
        tally = Recorded()
        with self._lock:
            done = set(claim.recorded)
        for r in results:
            outcome = self._outcome(claim, r, attempts.get(r.recipient, 0), now, tally)
            if r.recipient in done:
                continue
            outcomes.append(outcome)
            if outcome[0].status == "failed" and (r.extra or {}).get("bounce"):
                bounced.append(r.recipient)
        self.store.deliveries.record(self.key, claim.id, outcomes, now=now, bounced=bounced)
        return tally
