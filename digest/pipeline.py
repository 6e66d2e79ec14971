"""The order of the stages: ingest → select → teaser → render → deliver.

Every function takes the settings, the store and the moment it runs for (``now``, a controllable
clock), and returns a plain report. Only this module knows the order; each stage lives in its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from digest.config import Settings
from digest.delivery.base import Backend, OutgoingMessage, SendStopped
from digest.delivery.ledger import Ledger, sender_identity, sender_is_gone
from digest.delivery.mime import MessageTemplate, build_message
from digest.delivery.ratelimit import Pace
from digest.delivery.registry import backend_from_settings
from digest.errors import DeliveryConfigError, DeliveryError, DigestError, SourceError
from digest.models import Article, DeliveryResult, Issue, IssueEntry, RenderedIssue, UpsertReport
from digest.render.issue import fit_issue
from digest.select import select_articles
from digest.slots import issue_key, next_slot, slot_at_or_before, trigger_for
from digest.sources import source_from_settings
from digest.sources.base import Source, SourceResult, SourceState
from digest.sources.http import Fetcher, FetchPolicy, default_user_agent
from digest.sources.identity import plan_upsert, recognition_keys
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
    not_modified: bool = False
    duplicates: int = 0
    undated: int = 0
    moved_to: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        """What the read found, in a few words."""
        if self.error:
            return self.error
        if self.not_modified:
            return "not modified since the last read"
        parts = [f"{self.new} new", f"{self.updated} updated"]
        if self.duplicates:
            parts.append(f"{self.duplicates} already stored from another source")
        if self.undated:
            parts.append(f"{self.undated} undated, dated when first seen")
        return f"{self.seen} articles ({', '.join(parts)})"


@dataclass(frozen=True)
class IngestReport:
    sources: tuple[SourceOutcome, ...]

    @property
    def failed(self) -> tuple[SourceOutcome, ...]:
        return tuple(s for s in self.sources if s.error)


def fetcher_from_settings(settings: Settings) -> Fetcher:
    f = settings.fetch
    policy = FetchPolicy(
        user_agent=f.user_agent or default_user_agent(settings.newsletter.site_url),
        read_timeout=f.timeout,
        connect_timeout=min(10.0, f.timeout),
        deadline=max(f.timeout * 4, 60.0),
        max_bytes=int(f.max_response_mb * 1024 * 1024),
        retries=f.retries,
        max_retry_after=f.max_retry_after,
        host_delay=f.host_delay,
    )
    return Fetcher(policy)


def _collect(source: Source, state: SourceState, now: datetime) -> SourceResult | str:
    """One source's read, or its error as one line. Runs in a worker thread."""
    try:
        return source.collect(now, state)
    except SourceError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken source must not stop the others
        log.debug("source %r failed", source.name, exc_info=True)
        return f"source {source.name!r}: unexpected error reading {source.location}: {exc.__class__.__name__}: {exc}"


def store_articles(store: Store, batch: Sequence[Article], *, now: datetime) -> UpsertReport:
    """Store one source's batch, recognising articles already stored: the store says what it
    knows of the batch, identity decides what to write (see plan_upsert), the store writes it."""
    keys = recognition_keys(batch)
    known = store.articles.known((key for item in keys for _kind, key in item), (a.id for a in batch))
    return store.articles.apply(plan_upsert(batch, keys, known, now=now))


def ingest(settings: Settings, store: Store, *, now: datetime, fetcher: Fetcher | None = None) -> IngestReport:
    """Read every source and store what it offers. One failing source never stops the others.

    Sources are read concurrently in a bounded pool (``[fetch] workers``); the shared fetcher
    keeps requests to any one host serial and spaced. Results are stored in config order, so
    which source an article is first credited to does not depend on network timing.
    """
    tz = settings.newsletter.tz
    fetcher = fetcher or fetcher_from_settings(settings)
    jobs: list[tuple[Source, SourceState]] = []
    for cfg in settings.sources:
        source = source_from_settings(cfg, tz=tz, fetcher=fetcher)
        row = store.sources.get(cfg.name, source.location)
        state = SourceState(
            etag=row.etag if row is not None else None,
            last_modified=row.last_modified if row is not None else None,
            moved_to=row.moved_to if row is not None else None,
            known_keys=store.articles.known_keys(cfg.name) if cfg.fetch_full else frozenset(),
        )
        jobs.append((source, state))
    outcomes = []
    with ThreadPoolExecutor(
        max_workers=max(1, min(settings.fetch.workers, len(jobs) or 1)), thread_name_prefix="ingest"
    ) as pool:
        futures = [pool.submit(_collect, source, state, now) for source, state in jobs]
        for (source, _state), future in zip(jobs, futures):
            result = future.result()
            # Errors and problems go into the report (the CLI prints them); the log only echoes them.
            if isinstance(result, str):
                log.info("%s", result)
                store.sources.record_read(source.name, source.location, error=result, now=now)
                outcomes.append(SourceOutcome(source.name, error=result))
                continue
            for problem in result.problems:
                log.info("source %r: %s", source.name, problem)
            if result.moved_to:
                log.info(
                    "source %r: %s moved permanently to %s; update the config",
                    source.name,
                    source.location,
                    result.moved_to,
                )
            if result.not_modified:
                outcome = SourceOutcome(source.name, not_modified=True, moved_to=result.moved_to)
            else:
                stored = store_articles(store, result.articles, now=now)
                outcome = SourceOutcome(
                    source.name,
                    seen=len(result.articles),
                    new=stored.new,
                    updated=stored.updated,
                    duplicates=stored.duplicates,
                    undated=sum(1 for a in result.articles if a.date_is_first_seen),
                    moved_to=result.moved_to,
                    problems=result.problems,
                )
            store.sources.record_read(
                source.name,
                source.location,
                error=None,
                now=now,
                validators=(result.etag, result.last_modified),
                moved_to=result.moved_to,
                note=outcome.note,
            )
            outcomes.append(outcome)
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
    candidates = store.articles.published_between(window_start - window, slot.at + window)
    selection = select_articles(
        candidates,
        as_of=slot.at,
        window_start=window_start,
        already_sent=store.issues.carried_article_ids(excluding=slot.key),
        max_articles=settings.selection.max_articles,
    )
    entries = tuple(IssueEntry(a, make_teaser(a, settings.teaser.max_chars)) for a in selection.chosen)
    issue = Issue(key=slot.key, slot=slot.at, window_start=window_start, entries=entries, skipped=selection.skipped)
    # The issue as rendered: articles dropped to fit the size limit are not recorded as sent.
    issue, rendered = fit_issue(issue, settings)
    return BuiltIssue(issue, rendered)


def token_signer(settings: Settings, store: Store) -> TokenSigner:
    return signer_for(settings.security.secret_env, store.meta.secret)


@dataclass(frozen=True)
class BuildOutput:
    html: Path
    text: Path
    eml: Path


def write_build(built: BuiltIssue, settings: Settings, signer: TokenSigner, out: Path, *, now: datetime) -> BuildOutput:
    """Write issue.html, issue.txt and a sample issue.eml (addressed to a sample reader)."""
    from digest.render.issue import personalise

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
    added, _ = store.subscribers.add(result.rows, now=now)
    return added, result.problems


# --- send ------------------------------------------------------------------------------------------


@dataclass
class SendReport:
    key: str
    outcome: str  # sent | resumed | already-sent | skipped | dry-run | incomplete | claimed-elsewhere | held
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
    stop: Callable[[], bool] | None = None,
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
    row = store.issues.get(slot.key)
    if row is not None and row.status == "sent":
        counts = store.deliveries.counts(slot.key)
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
                store.issues.record_skipped(slot.key, slot=slot.at, note=note, now=now)
            return SendReport(slot.key, "skipped", f"issue {slot.key} not sent: {note}")
        if dry_run:
            count = _dry_run_render(settings, store, built.rendered, store.subscribers.iter_active_recipients(), now)
            return SendReport(
                slot.key,
                "dry-run",
                f"dry run: issue {slot.key} with {n} articles would go to {count} subscribers; "
                f"{count} messages rendered, nothing sent",
                {"pending": count},
            )
        # recipients=None: the active subscribers are frozen inside the database, not loaded.
        claimed = store.issues.claim(
            slot.key,
            slot=slot.at,
            rendered=built.rendered,
            article_ids=[a.id for a in built.issue.articles],
            recipients=None,
            now=now,
        )
        if not claimed:
            resumed = True
    rendered = store.issues.rendered(slot.key)
    assert rendered is not None
    if dry_run:
        pending = _dry_run_render(settings, store, rendered, store.deliveries.pending(slot.key), now)
        return SendReport(
            slot.key,
            "dry-run",
            f"dry run: issue {slot.key} has {pending} deliveries left; {pending} messages rendered, nothing sent",
            {"pending": pending},
        )
    return _deliver(
        settings,
        store,
        slot.key,
        rendered,
        resumed=resumed,
        clock=clock,
        sleep=sleep,
        backend=backend,
        progress=progress,
        rng=rng,
        stop=stop,
    )


def _dry_run_render(
    settings: Settings,
    store: Store,
    rendered: RenderedIssue,
    recipients: Iterator[tuple[str, str | None]],
    now: datetime,
) -> int:
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
    stop: Callable[[], bool] | None = None,
) -> SendReport:
    delivery = settings.delivery
    signer = token_signer(settings, store)
    template = MessageTemplate(rendered, settings.newsletter)
    backend = backend or backend_from_settings(delivery, issue_key=key, newsletter=settings.newsletter)
    pace = Pace(delivery.pace.messages_per_second, clock=lambda: clock().timestamp(), sleep=sleep)
    backend.pace = pace
    ledger = Ledger(
        store, key, retry=delivery.retry, lease_seconds=delivery.lease_seconds, **({"rng": rng} if rng else {})
    )
    batch_size = min(delivery.batch_size or backend.max_batch, backend.max_batch)
    taken = ledger.take_over_stopped(clock())
    if taken:
        log.warning(
            "issue %s: %d deliveries were in flight when an earlier send stopped; sending them again", key, taken
        )
    store.deliveries.skip_departed(key, now=clock())
    counts = store.deliveries.counts(key)
    total = sum(counts.values())
    sent, failed = counts.get("sent", 0), counts.get("failed", 0)
    done = 0
    with backend:
        while True:
            # Asked to stop (SIGTERM, or the issue's lease was lost): the batches sent so far are
            # recorded, the rest stay pending, and the next run resumes them.
            if stop is not None and stop():
                break
            moment = clock()
            claim = ledger.claim(batch_size, moment)
            if not claim.rows:
                due = store.deliveries.next_retry_at(key)
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
    counts = store.deliveries.counts(key)
    failures = store.deliveries.failed(key)
    left = counts.get("pending", 0) + counts.get("retry", 0) + counts.get("inflight", 0)
    if left == 0:
        store.issues.finish(key, now=clock())
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


def run_once(
    settings: Settings,
    store: Store,
    *,
    as_of: datetime,
    now: datetime,
    backend: Backend | None = None,
    clock: Callable[[], datetime] | None = None,
    stop: Callable[[], bool] | None = None,
    read_sources: bool = True,
) -> tuple[IngestReport, SendReport]:
    """Ingest, build and send the issue due at ``as_of``, holding the issue's lease throughout, so
    a second process (a scheduler, a manual run) working on the same slot sends nothing."""
    slot = due_slot(settings, as_of)
    existing = store.issues.get(slot.key)
    if existing is not None and existing.status in ("sent", "skipped"):
        # Nothing to do for this slot; do not touch the sources either.
        return IngestReport(()), send_issue(settings, store, slot, now=now, backend=backend)
    ingested = IngestReport(())

    def work(lease: IssueLease) -> SendReport:
        nonlocal ingested
        if read_sources:
            ingested = ingest(settings, store, now=now)
        sync_subscribers(settings, store, now=now)
        return send_issue(settings, store, slot, now=now, clock=clock, backend=backend, stop=lease.stopper(stop))

    report = _exclusively(store, slot, clock or _utcnow, work)
    return ingested, report


def send_issue_exclusive(
    settings: Settings,
    store: Store,
    slot: Slot,
    *,
    now: datetime,
    clock: Callable[[], datetime] | None = None,
    backend: Backend | None = None,
    dry_run: bool = False,
    stop: Callable[[], bool] | None = None,
    progress: Callable[[SendProgress], None] | None = None,
) -> SendReport:
    """:func:`send_issue` under the issue's lease (a dry run needs none: it changes nothing)."""
    if dry_run:
        return send_issue(settings, store, slot, now=now, clock=clock, backend=backend, dry_run=True)
    return _exclusively(
        store,
        slot,
        clock or _utcnow,
        lambda lease: send_issue(
            settings, store, slot, now=now, clock=clock, backend=backend, stop=lease.stopper(stop), progress=progress
        ),
    )


# --- one process per issue -------------------------------------------------------------------------

# How long a lease lasts without renewal. It is renewed between batches, so only a process that
# died mid-send leaves one behind; after this long another process may take over and resume.
LEASE_TTL = timedelta(minutes=10)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def lease_owner() -> str:
    """Who holds a lease: host, process and a random part (two schedulers in one process differ),
    the same form as a delivery sender's, so a holder that died on this host is recognised."""
    return sender_identity()


@dataclass
class IssueLease:
    """The lease on one issue, held while a process ingests, builds and sends it."""

    store: Store
    name: str
    owner: str
    clock: Callable[[], datetime]
    lost: bool = False

    def renew(self) -> bool:
        if not self.lost and not self.store.leases.renew(self.name, self.owner, now=self.clock(), ttl=LEASE_TTL):
            self.lost = True
            log.warning("%s: the lease was taken over by another process; stopping after this batch", self.name)
        return not self.lost

    def stopper(self, stop: Callable[[], bool] | None) -> Callable[[], bool]:
        """A ``stop`` check for :func:`send_issue` that also renews the lease between batches."""
        return lambda: (stop is not None and stop()) or not self.renew()


@contextmanager
def issue_lease(store: Store, key: str, *, clock: Callable[[], datetime]) -> Iterator[IssueLease | None]:
    """Hold the lease on issue ``key`` for the block; yields None when another process holds it."""
    lease = IssueLease(store, f"issue:{key}", lease_owner(), clock)
    if not store.leases.acquire(lease.name, lease.owner, now=clock(), ttl=LEASE_TTL):
        # A holder that was killed on this host will never renew: take over at once rather than
        # waiting out its lease (one on another host is waited out).
        holder = store.leases.holder(lease.name)
        if (
            holder is None
            or not sender_is_gone(holder.owner)
            or not store.leases.take_over(lease.name, holder.owner, lease.owner, now=clock(), ttl=LEASE_TTL)
        ):
            yield None
            return
    try:
        yield lease
    finally:
        if not lease.lost:
            store.leases.release(lease.name, lease.owner)


def _exclusively(
    store: Store, slot: Slot, clock: Callable[[], datetime], work: Callable[[IssueLease], SendReport]
) -> SendReport:
    with issue_lease(store, slot.key, clock=clock) as lease:
        if lease is None:
            holder = store.leases.holder(f"issue:{slot.key}")
            who = f" ({holder.owner}, since {holder.acquired_at.isoformat(timespec='seconds')})" if holder else ""
            return SendReport(
                slot.key,
                "claimed-elsewhere",
                f"issue {slot.key} is being sent by another process{who}; this run sends nothing",
            )
        row = store.issues.get(slot.key)
        if row is None and store.issues.is_held(slot.key):
            return SendReport(
                slot.key,
                "held",
                f"issue {slot.key} is held (digest hold {slot.key}); not sent. "
                f"When it is ready: digest hold --release {slot.key}, then digest run --as-of {slot.at.isoformat(timespec='minutes')}",
            )
        return work(lease)


# --- copies outside the ledger ---------------------------------------------------------------------


def send_copies(
    settings: Settings,
    store: Store,
    built: BuiltIssue,
    addresses: Sequence[str],
    *,
    now: datetime,
    subject_prefix: str,
    folder: str,
    backend: Backend | None = None,
) -> list[DeliveryResult]:
    """Send single copies of a built issue to a few addresses (a test copy, the editors' preview),
    outside the delivery ledger, through the configured backend."""
    signer = token_signer(settings, store)
    template = MessageTemplate(built.rendered, settings.newsletter, subject_prefix=subject_prefix)
    messages = [OutgoingMessage(a, template, signer.token(a), template.new_message_id(), now) for a in addresses]
    with backend or backend_from_settings(
        settings.delivery, issue_key=f"{folder}-{built.issue.key}", newsletter=settings.newsletter
    ) as b:
        return b.send_batch(messages)


def send_test_copy(
    settings: Settings, store: Store, slot: Slot, to: str, *, now: datetime, backend: Backend | None = None
) -> str:
    """Send one copy of the slot's issue, marked [TEST], to ``to``; returns the address as sent.
    Raises ValueError for a malformed address and DeliveryError when the copy was not delivered."""
    from digest.subscribers import normalise_address

    address = normalise_address(to)
    built = build_issue(settings, store, slot)
    (result,) = send_copies(
        settings, store, built, [address], now=now, subject_prefix="[TEST] ", folder="test", backend=backend
    )
    if result.status != "sent":
        raise DeliveryError(f"test copy to {address} not delivered: {result.detail}")
    return address


# A source failing this many runs in a row is worth a warning on every build.
FAILING_RUNS = 3


def check_sources_failing(
    store: Store, threshold: int = FAILING_RUNS, *, configured: Iterable[str] | None = None
) -> list[str]:
    """One warning per source that has failed ``threshold`` or more runs in a row (only the
    ``configured`` ones, when given: a source removed from the config is no one's concern)."""
    names = set(configured) if configured is not None else None
    return [
        f"source {r.name!r} has failed {r.failures} runs in a row (last error: {r.last_error})"
        for r in store.sources.all()
        if r.failures >= threshold and (names is None or r.name in names)
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
    "send_copies",
    "send_issue",
    "send_issue_exclusive",
    "send_test_copy",
    "upcoming_slot",
    "write_build",
]
