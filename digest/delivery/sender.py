"""The send engine: an issue's messages go through one backend, at one pace, exactly once each.

A :class:`Sender` owns what a send needs — the store (whose ledger records each delivery), the
backend, the clock and the pace — so each step is a short method: say whether an issue is already
done, record a thin week as skipped, open an issue (freeze its recipients), deliver what is left,
render a dry run, and send single copies outside the ledger (a test copy, the editors' preview).

Which issue to send and when is the pipeline's business; the bookkeeping that makes a resumed or
concurrent send safe is :mod:`digest.delivery.ledger`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import cached_property

from digest.config import Settings
from digest.delivery.base import Backend, OutgoingMessage, SendStopped
from digest.delivery.ledger import Claim, Ledger, Recorded
from digest.delivery.mime import MessageTemplate
from digest.delivery.ratelimit import Pace
from digest.errors import DeliveryConfigError, DeliveryError, DeliveryUnavailable
from digest.models import OUR_FAILURE, DeliveryResult, Issue, RenderedIssue, failed_on_our_side
from digest.redact import mask
from digest.slots import Slot
from digest.store import Store
from digest.text import plural
from digest.tokens import TokenSigner, signer_for

log = logging.getLogger(__name__)

# How often a sender that has nothing left to claim looks whether the deliveries in flight in
# other senders are done (or their heartbeat expired).
OTHERS_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class SendReport:
    key: str
    outcome: (
        str  # sent | resumed | already-sent | skipped | not-ingested | dry-run | incomplete | claimed-elsewhere | held
    )
    message: str
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        """0 only when every delivery was delivered or refused for its recipient by the receiving
        side; 3 when deliveries are left to send (run again); 4 when the send finished but some
        deliveries failed on our side (see `digest status`, then `digest send --retry-failed`)."""
        if self.outcome == "not-ingested":
            return 1
        if self.outcome == "incomplete":
            return 3
        if any(failed_on_our_side(detail) for _email, detail in self.failures):
            return 4
        return 0


@dataclass(frozen=True)
class SendProgress:
    """Where a send stands, after each batch (for a progress bar or log line)."""

    key: str
    total: int
    sent: int
    failed: int
    retry: int
    done_this_run: int


def _for_ledger(results: Sequence[DeliveryResult]) -> list[DeliveryResult]:
    """The results as they are stored: any secret masked out of their texts (a server may echo
    what it was sent), and a failure of ours marked as such (see failed_on_our_side)."""
    out = []
    for r in results:
        detail = mask(r.detail) if r.detail else r.detail
        if r.status == "failed" and r.extra.get("ours") and not failed_on_our_side(detail):
            detail = OUR_FAILURE + (detail or "")
        out.append(r if detail == r.detail else replace(r, detail=detail))
    return out


def _unwritable(bad: Sequence[tuple[str, str]]) -> str:
    return f"; {len(bad)} addresses cannot be written and would fail" if bad else ""


def token_signer(settings: Settings, store: Store) -> TokenSigner:
    """The signer of unsubscribe tokens: the secret from the environment, else the store's."""
    return signer_for(settings.security.secret_env, store.meta.secret)


def real_time_from(start: datetime) -> Callable[[], datetime]:
    """A clock that reads ``start`` now and moves on with real (monotonic) time."""
    started = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - started)


def render_every_message(
    template: MessageTemplate, signer: TokenSigner, recipients: Iterator[tuple[str, str | None]], now: datetime
) -> tuple[int, list[tuple[str, str]]]:
    """Render every recipient's message through the fast path and count them; nothing is kept,
    so a dry run over a million subscribers streams in constant memory. Also returns the
    addresses no message can be written for (their delivery would fail), with the reason."""
    count = 0
    bad: list[tuple[str, str]] = []
    for email, name in recipients:
        try:
            template.render(
                to=email, token=signer.token(email), date=now, message_id=template.new_message_id(), name=name
            )
        except ValueError as exc:
            bad.append((email, f"{OUR_FAILURE}no message can be made for this address: {exc}"))
        count += 1
    return count, bad


def finished_report(store: Store, key: str) -> SendReport | None:
    """The report for an issue already sent or skipped, or None when there is work left."""
    row = store.issues.get(key)
    if row is not None and row.status == "sent":
        counts = store.deliveries.counts(key)
        return SendReport(
            key,
            "already-sent",
            f"issue {key} was already sent ({counts.get('sent', 0)} delivered"
            f"{', ' + str(counts['failed']) + ' failed' if counts.get('failed') else ''}); nothing to send",
            counts,
            store.deliveries.failed(key),
        )
    if row is not None and row.status == "skipped":
        return SendReport(key, "skipped", f"issue {key} was skipped: {row.note}; nothing to send")
    return None


def closing_report(store: Store, key: str, ledger: Ledger, *, resumed: bool, now: datetime) -> SendReport:
    """At the end of a send: finish the issue when nothing is left to try; otherwise say what is left."""
    counts = store.deliveries.counts(key)
    failures = store.deliveries.failed(key)
    left = counts.get("pending", 0) + counts.get("retry", 0) + counts.get("inflight", 0)
    if left == 0:
        store.issues.finish(key, now=now)
        verb = "resumed and finished" if resumed else "sent"
        return SendReport(
            key,
            "resumed" if resumed else "sent",
            f"issue {key} {verb}: {counts.get('sent', 0)} delivered, {counts.get('failed', 0)} failed",
            counts,
            failures,
        )
    elsewhere = ledger.inflight_elsewhere()
    return SendReport(
        key,
        "incomplete",
        f"issue {key}: {counts.get('sent', 0)} delivered, {left} to retry, {counts.get('failed', 0)} failed"
        + (f" ({elsewhere} in flight in another sender)" if elsewhere else "")
        + "; run `digest send` again to retry",
        counts,
        failures,
    )


class Sender:
    """Sends one newsletter's issues. ``backend`` None: the configured one, made per issue (an
    outbox writes each issue to its own folder). ``clock`` and ``sleep`` are the time source and
    the way to wait, for the pace and for retries; tests pass simulated ones."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], datetime],
        backend: Backend | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self._backend = backend
        self.pace = Pace(settings.delivery.pace.messages_per_second, clock=lambda: clock().timestamp(), sleep=sleep)

    @cached_property
    def signer(self) -> TokenSigner:
        # Made on first use: the store's secret is created then, not by a send that turns out done.
        return token_signer(self.settings, self.store)

    def backend_for(self, folder: str) -> Backend:
        if self._backend is not None:
            return self._backend
        from digest.delivery.registry import backend_from_settings  # not loaded by a dry run

        return backend_from_settings(self.settings.delivery, issue_key=folder, newsletter=self.settings.newsletter)

    # --- an issue through the ledger ------------------------------------------------------------

    def finished(self, key: str) -> SendReport | None:
        """The report for an issue already sent or skipped, or None when there is work left."""
        return finished_report(self.store, key)

    def opened(self, key: str) -> bool:
        """Whether the issue was recorded and its recipients frozen by an earlier run."""
        return self.store.issues.get(key) is not None

    def skip(self, slot: Slot, reason: str, *, now: datetime, dry_run: bool = False) -> SendReport:
        """Record the slot's issue as skipped (a dry run records nothing)."""
        if not dry_run:
            self.store.issues.record_skipped(slot.key, slot=slot.at, note=reason, now=now)
        return SendReport(slot.key, "skipped", f"issue {slot.key} not sent: {reason}")

    def open(self, issue: Issue, rendered: RenderedIssue, *, now: datetime) -> bool:
        """Record the issue and freeze its recipients into pending deliveries, in one transaction.
        False when another run did so first (this one then resumes)."""
        # recipients=None: the active subscribers are frozen inside the database, not loaded.
        return self.store.issues.claim(
            issue.key,
            slot=issue.slot,
            rendered=rendered,
            article_ids=[a.id for a in issue.articles],
            recipients=None,
            now=now,
        )

    def rendered(self, key: str) -> RenderedIssue:
        """The stored rendering of an opened issue."""
        rendered = self.store.issues.rendered(key)
        assert rendered is not None, f"issue {key} is opened, so its rendering is stored"
        return rendered

    def deliver(
        self,
        key: str,
        *,
        resumed: bool,
        stop: Callable[[], bool] | None = None,
        progress: Callable[[SendProgress], None] | None = None,
        heartbeat: Callable[[], None] | None = None,
    ) -> SendReport:
        """Send an opened issue's pending deliveries in batches, waiting for retries that fall due,
        until none is left or ``stop()`` turns true (SIGTERM, or the issue's lease was lost): the
        batches sent so far are recorded, the rest stay pending, and the next run resumes them.
        Each message's outcome is recorded as its server answers it; ``heartbeat`` is called then
        too (it renews the issue's lease when due)."""
        delivery = self.settings.delivery
        template = MessageTemplate(self.rendered(key), self.settings.newsletter)
        backend = self.backend_for(key)
        backend.pace = self.pace
        ledger = Ledger(
            self.store,
            key,
            retry=delivery.retry,
            lease_seconds=delivery.lease_seconds,
            **({"rng": self.rng} if self.rng else {}),
        )
        batch_size = min(delivery.batch_size or backend.max_batch, backend.max_batch)
        taken = ledger.take_over_stopped(self.clock())
        if taken:
            log.warning(
                "issue %s: %d deliveries were in flight when an earlier send stopped; sending them again", key, taken
            )
        self.store.deliveries.skip_departed(key, now=self.clock())
        counts = self.store.deliveries.counts(key)
        total = sum(counts.values())
        sent, failed = counts.get("sent", 0), counts.get("failed", 0)
        done = 0
        current: list[Claim] = []

        def answered(result: DeliveryResult) -> Callable[[], None]:
            # Durable before this connection ends its next message's content (the backend calls
            # the returned wait): a crash repeats only what was in flight.
            (stored,) = _for_ledger([result])
            durable = ledger.note(current[0], stored, self.clock())
            if heartbeat is None:
                return durable

            def durable_and_beat() -> None:
                durable()
                heartbeat()

            return durable_and_beat

        backend.on_result = answered
        backend.on_hand_over = lambda recipient: ledger.hand_over(current[0], recipient, self.clock())
        try:
            backend.open()
        except DeliveryUnavailable as exc:
            when = self.clock() + timedelta(seconds=exc.retry_after)
            raise DeliveryUnavailable(
                f"{exc}; nothing was sent now; try again after {when.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC",
                retry_after=exc.retry_after,
            ) from None
        with ledger.recording():  # the connections' outcomes, group-committed
            try:
                while stop is None or not stop():
                    moment = self.clock()
                    claim = ledger.claim(batch_size, moment, each_handed_over=backend.reports_hand_over)
                    current[:] = [claim]
                    if not claim.rows:
                        wait = self._idle_wait(key, ledger)
                        if wait is None:
                            break
                        if wait > 0:
                            self.sleep(wait)
                        continue
                    messages = [
                        OutgoingMessage(
                            email, template, self.signer.token(email), template.new_message_id(), moment, name
                        )
                        for email, name, _attempts in claim.rows
                    ]
                    try:
                        results = backend.send_batch(messages)
                    except SendStopped as exc:
                        self._record(ledger, claim, exc.done)
                        ledger.release(claim, self.clock())
                        raise
                    except DeliveryConfigError:
                        ledger.release(claim, self.clock())
                        raise
                    tally = self._record(ledger, claim, results)
                    if tally.throttled:
                        self.pace.slow_down()
                    else:
                        self.pace.recover()
                    sent += tally.sent
                    failed += tally.failed
                    done += tally.sent + tally.failed
                    if progress is not None:
                        progress(SendProgress(key, total, sent, failed, tally.retry, done))
            finally:
                backend.close()
        commits, items, seconds = ledger.commit_stats
        if commits:
            log.info(
                "issue %s: %d outcomes and marks made durable in %d commits, %.2f s in them",
                key,
                items,
                commits,
                seconds,
            )
        return closing_report(self.store, key, ledger, resumed=resumed, now=self.clock())

    def _record(self, ledger: Ledger, claim: Claim, results: Sequence[DeliveryResult]) -> Recorded:
        """Record a batch's results; those that may have arrived without an answer count as
        interrupted, so `digest status` bounds the duplicates they may cause."""
        tally = ledger.record(claim, _for_ledger(results), self.clock())
        maybe = [r.recipient for r in results if r.extra.get("possibly_delivered")]
        self.store.deliveries.count_interrupted(ledger.key, maybe, now=self.clock())
        return tally

    def _idle_wait(self, key: str, ledger: Ledger) -> float | None:
        """Nothing to claim now: seconds to wait before looking again, or None when this issue has
        nothing left for anyone. Retries wait for their time; deliveries in flight in other
        senders (parallel workers, other machines) are waited for while their heartbeat lives and
        taken over when it expired, so every sender ends with the issue finished."""
        now = self.clock()
        waits: list[float] = []
        due = self.store.deliveries.next_retry_at(key)
        if due is not None:
            waits.append(max((due - now).total_seconds(), 0.0))
        if ledger.inflight_elsewhere():
            taken = ledger.take_over_stopped(now)
            if taken:
                log.warning("issue %s: %d deliveries of a sender that stopped are sent again", key, taken)
                return 0.0
            waits.append(min(OTHERS_POLL_SECONDS, ledger.lease.total_seconds() / 3))
        if not waits:
            return None
        wait = min(waits)
        if wait > 0 and due is not None and wait == max((due - now).total_seconds(), 0.0):
            log.info("issue %s: waiting %.1f s for the next retry", key, wait)
        return wait

    # --- copies outside the ledger ----------------------------------------------------------------

    def send_copies(
        self,
        key: str,
        rendered: RenderedIssue,
        addresses: Sequence[str],
        *,
        now: datetime,
        subject_prefix: str,
        folder: str,
    ) -> list[DeliveryResult]:
        """Send single copies of an issue to a few addresses (a test copy, the editors' preview),
        outside the delivery ledger; ``folder`` keeps them apart from the issue's own outbox."""
        template = MessageTemplate(rendered, self.settings.newsletter, subject_prefix=subject_prefix)
        messages = [
            OutgoingMessage(a, template, self.signer.token(a), template.new_message_id(), now) for a in addresses
        ]
        with self.backend_for(f"{folder}-{key}") as backend:
            return backend.send_batch(messages)

    def send_test_copy(self, key: str, rendered: RenderedIssue, address: str, *, now: datetime) -> None:
        """Send one copy marked [TEST] to ``address`` (already normalised); raises DeliveryError
        when the copy was not delivered."""
        (result,) = self.send_copies(key, rendered, [address], now=now, subject_prefix="[TEST] ", folder="test")
        if result.status != "sent":
            raise DeliveryError(f"test copy to {address} not delivered: {result.detail}")


# --- dry runs: every message rendered, nothing sent --------------------------------------------------


def dry_run_new(sender: Sender, issue: Issue, rendered: RenderedIssue, *, now: datetime) -> SendReport:
    """Render the messages of an issue not opened yet, for every active subscriber."""
    count, bad = render_every_message(
        MessageTemplate(rendered, sender.settings.newsletter),
        sender.signer,
        sender.store.subscribers.iter_active_recipients(),
        now,
    )
    return SendReport(
        issue.key,
        "dry-run",
        f"dry run: issue {issue.key} with {plural(len(issue.entries), 'article')} would go to "
        f"{plural(count, 'subscriber')}; {plural(count - len(bad), 'message')} rendered, nothing sent"
        f"{_unwritable(bad)}",
        {"pending": count},
        bad,
    )


def dry_run_pending(sender: Sender, key: str, *, now: datetime) -> SendReport:
    """Render the messages an opened issue still owes."""
    pending, bad = render_every_message(
        MessageTemplate(sender.rendered(key), sender.settings.newsletter),
        sender.signer,
        sender.store.deliveries.pending(key),
        now,
    )
    return SendReport(
        key,
        "dry-run",
        f"dry run: issue {key} has {pending} deliveries left; {pending - len(bad)} messages rendered, "
        f"nothing sent{_unwritable(bad)}",
        {"pending": pending},
        bad,
    )
