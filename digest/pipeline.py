"""The order of the stages: ingest → select → teaser → render → deliver.

Every function takes the settings, the store and the moment it runs for (``now``, a controllable
clock), and returns a plain report. Only this module knows the order; each stage lives in its own:
the send engine in :mod:`digest.delivery.sender`, the one-sender-per-issue lease in
:mod:`digest.leases`, the thin-week rule in :mod:`digest.select`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.delivery.base import Backend
from digest.delivery.sender import (
    Sender,
    SendProgress,
    SendReport,
    dry_run_new,
    dry_run_pending,
    real_time_from,
    token_signer,
)
from digest.errors import SourceError
from digest.leases import IssueLease, exclusively, wait_while_held
from digest.models import Article, DeliveryResult, Issue, IssueEntry, RenderedIssue, UpsertReport
from digest.render.issue import fit_issue
from digest.select import select_articles, too_few_articles
from digest.slots import Slot, issue_key, next_slot, slot_at_or_before, trigger_for
from digest.sources.identity import plan_upsert, recognition_keys
from digest.sources.report import IngestReport, SourceOutcome
from digest.store import Store
from digest.subscribers import normalise_address, read_subscriber_csv
from digest.teaser import make_teaser

if TYPE_CHECKING:
    from digest.sources.base import Source, SourceResult, SourceState
    from digest.sources.http import Fetcher

log = logging.getLogger(__name__)


# --- ingest ----------------------------------------------------------------------------------------


def fetcher_from_settings(settings: Settings) -> Fetcher:
    # The sources' modules (an HTTP client, trafilatura, feedparser) are imported by the ingest
    # that uses them: `digest send` loads the pipeline and never reads a source.
    from digest.sources.http import Fetcher, FetchPolicy, default_user_agent

    f = settings.fetch
    policy = FetchPolicy(
        user_agent=f.user_agent or default_user_agent(settings.newsletter.site_url),
        read_timeout=f.timeout,
        connect_timeout=min(10.0, f.timeout),
        deadline=f.deadline or max(f.timeout * 4, 60.0),
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
    from digest.sources.base import SourceState
    from digest.sources.registry import source_from_settings

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
                    future=sum(1 for a in result.articles if a.published > now),
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
            log.debug("source %r: %s", source.name, outcome.note)
            outcomes.append(outcome)
    return IngestReport(tuple(outcomes))


# --- slots -----------------------------------------------------------------------------------------


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
    edits = store.edits.get(slot.key)
    # A wider net than the window, so the preview can say why nearby articles were left out.
    candidates = store.articles.published_between(window_start - window, slot.at + window)
    selection = select_articles(
        candidates,
        as_of=slot.at,
        window_start=window_start,
        already_sent=store.issues.carried_article_ids(excluding=slot.key),
        max_articles=settings.selection.max_articles,
        edits=edits,
    )
    log.debug(
        "issue %s: %d candidate articles, %d chosen, %d left out",
        slot.key,
        len(candidates),
        len(selection.chosen),
        len(selection.skipped),
    )
    entries = tuple(IssueEntry(a, make_teaser(a, settings.teaser.max_chars)) for a in selection.chosen)
    chosen = {a.id for a in selection.chosen}
    issue = Issue(
        key=slot.key,
        slot=slot.at,
        window_start=window_start,
        entries=entries,
        skipped=selection.skipped,
        subject=edits.subject,
        note=edits.note,
        pinned=edits.pinned if edits.pinned in chosen else None,
    )
    # The issue as rendered: articles dropped to fit the size limit are not recorded as sent.
    issue, rendered = fit_issue(issue, settings)
    return BuiltIssue(issue, rendered)


# --- subscribers -----------------------------------------------------------------------------------


def sync_subscribers(settings: Settings, store: Store, *, now: datetime) -> tuple[int, list[str]]:
    """Add the addresses of the configured CSV that the store does not know yet. Existing
    subscribers keep their status, so someone who unsubscribed is never re-added."""
    if settings.subscribers.csv is None:
        return 0, []
    result = read_subscriber_csv(settings.subscribers.csv)
    report = store.subscribers.add(
        result.rows, now=now, origin="import", reason=f"imported from {settings.subscribers.csv}"
    )
    return len(report.added), result.problems


# --- send ------------------------------------------------------------------------------------------


def send_issue(
    settings: Settings,
    store: Store,
    slot: Slot,
    *,
    now: datetime,
    sender: Sender | None = None,
    dry_run: bool = False,
    stop: Callable[[], bool] | None = None,
    progress: Callable[[SendProgress], None] | None = None,
    force: bool = False,
    heartbeat: Callable[[], None] | None = None,
) -> SendReport:
    """Send the issue of ``slot`` to every active subscriber, exactly once each.

    The first run for a slot builds the issue and, in one transaction, records it and freezes
    its recipients into pending deliveries. Any later run for the same slot resumes those
    deliveries (after a crash or with retries) or, when all are done, sends nothing and says so.
    ``sender`` None: the configured backend on real time, starting at ``now``. ``force``: send a
    slot that was skipped (or would be, for too few articles) after all, if it has any article.
    A send before any source was ever read says so and records nothing.
    """
    sender = sender or _sender(settings, store, now, None)
    finished = sender.finished(slot.key)
    unskipping = force and finished is not None and finished.outcome == "skipped"
    if finished is not None and not unskipping:
        return finished
    resumed = sender.opened(slot.key) and not unskipping
    if not resumed:
        built = build_issue(settings, store, slot)
        too_few = too_few_articles(len(built.issue.entries), settings.selection.min_articles)
        if too_few is not None and not store.sources.all():
            return SendReport(
                slot.key,
                "not-ingested",
                f"issue {slot.key} not sent: no source has been read yet; run `digest ingest` first "
                "(or `digest run`, which reads them and sends); nothing was recorded",
            )
        if too_few is not None and not (force and built.issue.entries):
            if unskipping:
                return SendReport(slot.key, "skipped", f"issue {slot.key} not sent: {too_few}; nothing to send")
            return sender.skip(slot, too_few, now=now, dry_run=dry_run)
        if unskipping and not dry_run:
            store.issues.unskip(slot.key)
        if dry_run:
            return dry_run_new(sender, built.issue, built.rendered, now=now)
        resumed = not sender.open(built.issue, built.rendered, now=now)
    if dry_run:
        return dry_run_pending(sender, slot.key, now=now)
    return sender.deliver(slot.key, resumed=resumed, stop=stop, progress=progress, heartbeat=heartbeat)


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
        return IngestReport(()), send_issue(
            settings, store, slot, now=now, sender=_sender(settings, store, now, backend)
        )
    ingested = IngestReport(())

    def work(lease: IssueLease) -> SendReport:
        nonlocal ingested
        if read_sources:
            ingested = ingest(settings, store, now=now)
        sync_subscribers(settings, store, now=now)
        sender = _sender(settings, store, now, backend, clock)
        return send_issue(settings, store, slot, now=now, sender=sender, stop=lease.stopper(stop), heartbeat=lease.beat)

    report = exclusively(store, slot, clock or _utcnow, work, ttl=_heartbeat(settings))
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
    force: bool = False,
) -> SendReport:
    """:func:`send_issue` under the issue's lease (a dry run needs none: it changes nothing).

    When another sender holds the lease (a parallel worker, another machine on the same
    database), this one waits until that sender has opened the issue and then joins in: the
    ledger's claims keep their deliveries apart, and each sender ends when the issue is done."""
    if dry_run:
        return send_issue(
            settings,
            store,
            slot,
            now=now,
            sender=_sender(settings, store, now, backend, clock),
            dry_run=True,
            force=force,
        )
    report = exclusively(
        store,
        slot,
        clock or _utcnow,
        lambda lease: send_issue(
            settings,
            store,
            slot,
            now=now,
            sender=_sender(settings, store, now, backend, clock),
            stop=lease.stopper(stop),
            progress=progress,
            force=force,
            heartbeat=lease.beat,
        ),
        ttl=_heartbeat(settings),
    )
    if report.outcome != "claimed-elsewhere":
        return report
    sender = _sender(settings, store, now, backend, clock)
    if not wait_while_held(
        store, slot.key, clock=sender.clock, sleep=sender.sleep, ready=lambda: sender.opened(slot.key)
    ):
        return report
    return sender.finished(slot.key) or sender.deliver(slot.key, resumed=True, stop=stop, progress=progress)


def _heartbeat(settings: Settings) -> timedelta:
    """How long the issue's lease lasts without renewal: the same heartbeat as a claimed batch's."""
    return timedelta(seconds=settings.delivery.lease_seconds)


def _sender(
    settings: Settings,
    store: Store,
    now: datetime,
    backend: Backend | None,
    clock: Callable[[], datetime] | None = None,
) -> Sender:
    """A sender on ``clock``, else on real time from ``now`` (counted from when the send starts)."""
    return Sender(settings, store, clock=clock or real_time_from(now), backend=backend)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


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
    return _sender(settings, store, now, backend).send_copies(
        built.issue.key, built.rendered, addresses, now=now, subject_prefix=subject_prefix, folder=folder
    )


def send_notice(
    settings: Settings,
    store: Store,
    notice: RenderedIssue,
    to: str,
    *,
    now: datetime,
    backend: Backend | None = None,
) -> DeliveryResult:
    """Send one e-mail that is not an issue (a sign-up confirmation, a welcome) to ``to`` through
    the configured backend, outside the delivery ledger; ``notice.key`` names it (the outbox
    backend keeps it in the folder ``notice-KEY``)."""
    (result,) = _sender(settings, store, now, backend).send_copies(
        notice.key, notice, [to], now=now, subject_prefix="", folder="notice"
    )
    return result


def send_test_copy(
    settings: Settings, store: Store, slot: Slot, to: str, *, now: datetime, backend: Backend | None = None
) -> str:
    """Send one copy of the slot's issue, marked [TEST], to ``to``; returns the address as sent.
    Raises ValueError for a malformed address and DeliveryError when the copy was not delivered."""
    address = normalise_address(to)  # before the build: a typo costs nothing
    built = build_issue(settings, store, slot)
    _sender(settings, store, now, backend).send_test_copy(slot.key, built.rendered, address, now=now)
    return address


__all__ = [
    "BuiltIssue",
    "IngestReport",
    "SendProgress",
    "SendReport",
    "Slot",
    "build_issue",
    "due_slot",
    "ingest",
    "run_once",
    "send_copies",
    "send_issue",
    "send_issue_exclusive",
    "send_notice",
    "send_test_copy",
    "sync_subscribers",
    "token_signer",
    "upcoming_slot",
]
