"""The order of the stages: ingest → select → teaser → render → deliver.

Every function takes the settings, the store and the moment it runs for (``now``, a controllable
clock), and returns a plain report. Only this module knows the order; each stage lives in its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from digest.config import Settings
from digest.delivery.base import Backend, OutgoingMessage, SendStopped, backend_from_settings
from digest.delivery.ledger import Ledger
from digest.delivery.mime import MessageTemplate
from digest.delivery.ratelimit import Pace
from digest.errors import DeliveryConfigError, DigestError, SourceError
from digest.models import Issue, IssueEntry, RenderedIssue
from digest.render.issue import render_issue
from digest.render.message import build_message
from digest.select import select_articles
from digest.slots import issue_key, next_slot, slot_at_or_before, trigger_for
from digest.sources import source_from_settings
from digest.store import Store
from digest.subscribers import read_subscriber_csv
from digest.teaser import make_teaser
from digest.tokens import TokenSigner, signer_for

log = logging.getLogger(__name__)

SAMPLE_RECIPIENT = "reader@example.org"


# --- ingest ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceOutcome:
    name: str
    seen: int = 0
    new: int = 0
    updated: int = 0
    error: str | None = None


@dataclass(frozen=True)
class IngestReport:
    sources: tuple[SourceOutcome, ...]

    @property
    def failed(self) -> tuple[SourceOutcome, ...]:
        return tuple(s for s in self.sources if s.error)


def ingest(settings: Settings, store: Store, *, now: datetime) -> IngestReport:
    """Read every source and store what it offers. One failing source never stops the others."""
    outcomes = []
    tz = settings.newsletter.tz
    for cfg in settings.sources:
        source = source_from_settings(cfg, tz=tz)
        try:
            found = source.read(now)
        except SourceError as exc:
            log.warning("%s", exc)
            store.record_source(cfg.name, source.location, error=str(exc), now=now)
            outcomes.append(SourceOutcome(cfg.name, error=str(exc)))
            continue
        new, updated = store.upsert_articles(found, now=now)
        store.record_source(cfg.name, source.location, error=None, now=now)
        outcomes.append(SourceOutcome(cfg.name, len(found), new, updated))
    return IngestReport(tuple(outcomes))


# --- slots -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    key: str
    at: datetime


def due_slot(settings: Settings, moment: datetime) -> Slot:
    """The scheduled slot at or before ``moment``: the issue that is due then."""
    trig = trigger_for(settings.schedule.cron, settings.newsletter.tz)
    at = slot_at_or_before(trig, moment)
    return Slot(issue_key(trig, at), at)


def upcoming_slot(settings: Settings, moment: datetime) -> Slot:
    """The first scheduled slot after ``moment``: the issue that goes out next."""
    trig = trigger_for(settings.schedule.cron, settings.newsletter.tz)
    at = next_slot(trig, moment)
    return Slot(issue_key(trig, at), at)


# --- build -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltIssue:
    issue: Issue
    rendered: RenderedIssue


def build_issue(settings: Settings, store: Store, slot: Slot) -> BuiltIssue:
    """Select, write teasers and render the issue for a slot, as of that slot."""
    window = timedelta(days=settings.selection.window_days)
    window_start = slot.at - window
    # A wider net than the window, so the preview can say why nearby articles were left out.
    candidates = store.articles_published_between(window_start - window, slot.at + window)
    selection = select_articles(
        candidates,
        as_of=slot.at,
        window_start=window_start,
        already_sent=store.article_ids_in_issues(excluding=slot.key),
        max_articles=settings.selection.max_articles,
    )
    entries = tuple(IssueEntry(a, make_teaser(a, settings.teaser.max_chars)) for a in selection.chosen)
    issue = Issue(key=slot.key, slot=slot.at, window_start=window_start, entries=entries, skipped=selection.skipped)
    return BuiltIssue(issue, render_issue(issue, settings))


def token_signer(settings: Settings, store: Store) -> TokenSigner:
    return signer_for(settings.security.secret_env, store.secret)


@dataclass(frozen=True)
class BuildOutput:
    html: Path
    text: Path
    eml: Path


def write_build(built: BuiltIssue, settings: Settings, signer: TokenSigner, out: Path, *, now: datetime) -> BuildOutput:
    """Write issue.html, issue.txt and a sample issue.eml (addressed to a sample reader)."""
    from digest.render.message import personalise

    out.mkdir(parents=True, exist_ok=True)
    token = signer.token(SAMPLE_RECIPIENT)
    html, text = personalise(built.rendered, email=SAMPLE_RECIPIENT, token=token)
    paths = BuildOutput(out / "issue.html", out / "issue.txt", out / "issue.eml")
    paths.html.write_text(html, encoding="utf-8")
    paths.text.write_text(text, encoding="utf-8")
    msg = build_message(built.rendered, settings.newsletter, to=SAMPLE_RECIPIENT, token=token, now=now)
    paths.eml.write_bytes(msg.as_bytes())
    return paths


# --- subscribers -----------------------------------------------------------------------------------


def sync_subscribers(settings: Settings, store: Store, *, now: datetime) -> tuple[int, list[str]]:
    """Add the addresses of the configured CSV that the store does not know yet. Existing
    subscribers keep their status, so someone who unsubscribed is never re-added."""
    if settings.subscribers.csv is None:
        return 0, []
    result = read_subscriber_csv(settings.subscribers.csv)
    added, _ = store.add_subscribers(result.rows, now=now)
    return added, result.problems


# --- send ------------------------------------------------------------------------------------------


@dataclass
class SendReport:
    key: str
    outcome: str  # sent | resumed | already-sent | skipped | dry-run | incomplete | claimed-elsewhere
    message: str
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class SendProgress:
    """Where a send stands, after each batch (for a progress bar or log line)."""

    key: str
    total: int
    sent: int
    failed: int
    retry: int
    done_this_run: int


def send_issue(
    settings: Settings,
    store: Store,
    slot: Slot,
    *,
    now: datetime,
    clock: Callable[[], datetime] | None = None,
    backend: Backend | None = None,
    dry_run: bool = False,
    sleep: Callable[[float], None] | None = None,
    progress: Callable[[SendProgress], None] | None = None,
    rng: Callable[[], float] | None = None,
) -> SendReport:
    """Send the issue of ``slot`` to every active subscriber, exactly once each.

    The first run for a slot builds the issue and, in one transaction, records it and freezes
    its recipients into pending deliveries. Any later run for the same slot resumes those
    deliveries (after a crash or with retries) or, when all are done, sends nothing and says so.
    The bookkeeping is :mod:`digest.delivery.ledger`'s.

    ``clock`` and ``sleep`` are the time source and the way to wait (for the pace and for
    retries); by default real time, starting at ``now``.
    """
    if clock is None:
        started = time.monotonic()

        def clock() -> datetime:
            return now + timedelta(seconds=time.monotonic() - started)

    sleep = sleep or time.sleep
    row = store.issue(slot.key)
    if row is not None and row.status == "sent":
        counts = store.delivery_counts(slot.key)
        return SendReport(
            slot.key,
            "already-sent",
            f"issue {slot.key} was already sent ({counts.get('sent', 0)} delivered"
            f"{', ' + str(counts['failed']) + ' failed' if counts.get('failed') else ''}); nothing to send",
            counts,
        )
    if row is not None and row.status == "skipped":
        return SendReport(slot.key, "skipped", f"issue {slot.key} was skipped: {row.note}; nothing to send")

    resumed = row is not None
    if row is None:
        built = build_issue(settings, store, slot)
        n = len(built.issue.entries)
        if n < settings.selection.min_articles:
            note = f"only {n} new article{'s' if n != 1 else ''}, fewer than selection.min_articles = {settings.selection.min_articles}"
            if not dry_run:
                store.record_skipped_issue(slot.key, slot=slot.at, note=note, now=now)
            return SendReport(slot.key, "skipped", f"issue {slot.key} not sent: {note}")
        if dry_run:
            count = _dry_run_render(settings, store, built.rendered, store.iter_active_recipients(), now)
            return SendReport(
                slot.key,
                "dry-run",
                f"dry run: issue {slot.key} with {n} articles would go to {count} subscribers; "
                f"{count} messages rendered, nothing sent",
                {"pending": count},
            )
        # recipients=None: the active subscribers are frozen inside the database, not loaded.
        claimed = store.claim_issue(
            slot.key,
            slot=slot.at,
            rendered=built.rendered,
            article_ids=[a.id for a in built.issue.articles],
            recipients=None,
            now=now,
        )
        if not claimed:
            resumed = True
    rendered = store.rendered_issue(slot.key)
    assert rendered is not None
    if dry_run:
        pending = _dry_run_render(settings, store, rendered, store.pending_deliveries(slot.key), now)
        return SendReport(
            slot.key, "dry-run", f"dry run: issue {slot.key} has {pending} deliveries left; {pending} messages rendered, nothing sent", {"pending": pending}
        )
    return _deliver(settings, store, slot.key, rendered, resumed=resumed, clock=clock, sleep=sleep, backend=backend, progress=progress, rng=rng)


def _dry_run_render(settings: Settings, store: Store, rendered: RenderedIssue, recipients: Iterator[tuple[str, str | None]], now: datetime) -> int:
    """Render every recipient's message through the fast path and count them; nothing is kept,
    so a dry run over a million subscribers streams in constant memory."""
    template = MessageTemplate(rendered, settings.newsletter)
    signer = token_signer(settings, store)
    count = 0
    for email, _name in recipients:
        template.render(to=email, token=signer.token(email), date=now, message_id=template.new_message_id())
        count += 1
    return count


def _deliver(
    settings: Settings,
    store: Store,
    key: str,
    rendered: RenderedIssue,
    *,
    resumed: bool,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    backend: Backend | None,
    progress: Callable[[SendProgress], None] | None,
    rng: Callable[[], float] | None,
) -> SendReport:
    delivery = settings.delivery
    signer = token_signer(settings, store)
    template = MessageTemplate(rendered, settings.newsletter)
    backend = backend or backend_from_settings(delivery, issue_key=key)
    pace = Pace(delivery.pace.messages_per_second, clock=lambda: clock().timestamp(), sleep=sleep)
    backend.pace = pace
    ledger = Ledger(store, key, retry=delivery.retry, lease_seconds=delivery.lease_seconds, **({"rng": rng} if rng else {}))
    batch_size = min(delivery.batch_size or backend.max_batch, backend.max_batch)
    taken = ledger.take_over_stopped(clock())
    if taken:
        log.warning("issue %s: %d deliveries were in flight when an earlier send stopped; sending them again", key, taken)
    store.skip_departed(key, now=clock())
    counts = store.delivery_counts(key)
    total = sum(counts.values())
    sent, failed = counts.get("sent", 0), counts.get("failed", 0)
    done = 0
    with backend:
        while True:
            # (A `stop` check between batches fits here: the ledger is consistent at this point.)
            moment = clock()
            claim = ledger.claim(batch_size, moment)
            if not claim.rows:
                due = store.next_retry_at(key)
                if due is None:
                    break
                wait = (due - clock()).total_seconds()
                if wait > 0:
                    log.info("issue %s: waiting %.1f s for the next retry", key, wait)
                    sleep(wait)
                continue
            messages = [
                OutgoingMessage(email, template, signer.token(email), template.new_message_id(), moment)
                for email, _name, _attempts in claim.rows
            ]
            try:
                results = backend.send_batch(messages)
            except SendStopped as exc:
                ledger.record(claim, exc.done, clock())
                ledger.release(claim, clock())
                raise
            except DeliveryConfigError:
                ledger.release(claim, clock())
                raise
            tally = ledger.record(claim, results, clock())
            if tally.throttled:
                pace.slow_down()
            else:
                pace.recover()
            sent += tally.sent
            failed += tally.failed
            done += tally.sent + tally.failed
            if progress is not None:
                progress(SendProgress(key, total, sent, failed, tally.retry, done))
    counts = store.delivery_counts(key)
    failures = store.failed_deliveries(key)
    left = counts.get("pending", 0) + counts.get("retry", 0) + counts.get("inflight", 0)
    if left == 0:
        store.finish_issue(key, now=clock())
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


def run_once(settings: Settings, store: Store, *, as_of: datetime, now: datetime, backend: Backend | None = None) -> tuple[IngestReport, SendReport]:
    """Ingest, build and send the issue due at ``as_of``."""
    slot = due_slot(settings, as_of)
    existing = store.issue(slot.key)
    if existing is not None and existing.status in ("sent", "skipped"):
        # Nothing to do for this slot; do not touch the sources either.
        return IngestReport(()), send_issue(settings, store, slot, now=now, backend=backend)
    report = ingest(settings, store, now=now)
    sync_subscribers(settings, store, now=now)
    return report, send_issue(settings, store, slot, now=now, backend=backend)


def check_sources_failing(store: Store, threshold: int = 3) -> list[str]:
    return [
        f"source {r.name!r} has failed {r.failures} runs in a row (last error: {r.last_error})"
        for r in store.source_rows()
        if r.failures >= threshold
    ]


__all__ = [
    "BuiltIssue",
    "DigestError",
    "IngestReport",
    "SendReport",
    "Slot",
    "build_issue",
    "due_slot",
    "ingest",
    "run_once",
    "send_issue",
    "upcoming_slot",
    "write_build",
]
