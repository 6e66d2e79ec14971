"""The scheduler: sends each issue at its slot, by itself, exactly once.

An APScheduler 3.x ``BlockingScheduler`` runs a ``CronTrigger`` made from ``[schedule] cron`` in the
newsletter's IANA time zone (so a daylight-saving change moves nothing: 08:00 stays 08:00 local).
Its job lives in a ``SQLAlchemyJobStore`` in the state database, so a slot that passed while the
scheduler was down is still known when it starts again: within ``misfire_grace_hours`` the issue
goes out late (once: ``coalesce``), past it the log says it was missed and how to send it by hand.

Exactly once, whatever runs: every send goes through :func:`digest.pipeline.run_once`, which holds
the issue's lease in the database while it ingests, builds and sends. A restart, a second
scheduler process over the same database or a manual ``digest run`` for the same slot finds the
lease taken, or the issue already sent, and sends nothing.

Jobs run in the scheduler's own thread (APScheduler's ``DebugExecutor``): one send at a time, and
SIGTERM/SIGINT only set a flag that the send checks between batches — the batch in flight is
finished and recorded, the rest stays pending, and the next start resumes it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from threading import TIMEOUT_MAX
from types import FrameType
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_MISSED, EVENT_SCHEDULER_STARTED, JobExecutionEvent, SchedulerEvent
from apscheduler.executors.debug import DebugExecutor
from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import OperationalError

from digest.config import Settings
from digest.delivery.base import Backend
from digest.errors import StateError
from digest.pipeline import (
    SendReport,
    Slot,
    build_issue,
    due_slot,
    ingest,
    run_once,
    send_copies,
    send_issue_exclusive,
    upcoming_slot,
)
from digest.slots import trigger_for
from digest.store import Store

log = logging.getLogger(__name__)

SEND_JOB = "digest-send"
REVIEW_JOB = "digest-review"
RESUME_JOB = "digest-resume"
# How often a send left unfinished (stopped, crashed, transient failures) is picked up again.
RESUME_EVERY = timedelta(minutes=15)


def local_time(moment: datetime, settings: Settings) -> str:
    """A moment as the newsletter's readers would say it: ``Mon 11 Aug 2025 08:00 BST``."""
    return moment.astimezone(settings.newsletter.tz).strftime("%a %-d %b %Y %H:%M %Z")


def _hours(h: float) -> str:
    return f"{h:g} hour{'s' if h != 1 else ''}"


# --- time --------------------------------------------------------------------------------------


class Clock(Protocol):
    """Where the scheduler gets the time and waits for it. APScheduler itself reads the system
    clock; a test that drives a scheduler with simulated time replaces both."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float | None, wake: threading.Event, stopping: Callable[[], bool]) -> None:
        """Return after ``seconds`` (None: no limit), or sooner when ``wake`` is set or
        ``stopping()`` turns true."""


class SystemClock:
    # A stop is asked for by a signal handler, which only sets a flag (taking a lock inside a
    # handler can deadlock with the interrupted code), so waiting checks it at least this often.
    POLL_SECONDS = 0.5

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float | None, wake: threading.Event, stopping: Callable[[], bool]) -> None:
        deadline = time.monotonic() + (TIMEOUT_MAX if seconds is None else max(seconds, 0.0))
        while not stopping():
            left = deadline - time.monotonic()
            if left <= 0 or wake.wait(min(left, self.POLL_SECONDS)):
                return


# --- triggers ----------------------------------------------------------------------------------


class ReviewTrigger(BaseTrigger):
    """Fires a fixed number of hours before each slot of the issue schedule. The hours are real
    hours (counted in UTC), so a review across a daylight-saving change still comes N hours ahead."""

    def __init__(self, slots: CronTrigger, hours: float) -> None:
        self.slots = slots
        self.hours = hours

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        ahead = timedelta(hours=self.hours)
        prev = None if previous_fire_time is None else previous_fire_time.astimezone(timezone.utc) + ahead
        slot = self.slots.get_next_fire_time(prev, now.astimezone(timezone.utc) + ahead)
        return None if slot is None else (slot.astimezone(timezone.utc) - ahead).astimezone(self.slots.timezone)

    def __str__(self) -> str:
        return f"review[{self.hours:g}h before {self.slots}]"


def _same_trigger(a: Any, b: Any) -> bool:
    return (
        type(a) is type(b) and str(a) == str(b) and str(getattr(a, "timezone", "")) == str(getattr(b, "timezone", ""))
    )


# --- the next runs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    slot: Slot
    review_at: datetime | None


def planned_runs(settings: Settings, after: datetime, count: int = 5) -> list[PlannedRun]:
    """The next ``count`` slots after ``after``, with the time of each [PREVIEW] when reviewing."""
    review = timedelta(hours=settings.schedule.review_hours)
    runs = []
    moment = after
    for _ in range(count):
        slot = upcoming_slot(settings, moment)
        runs.append(PlannedRun(slot, (slot.at.astimezone(timezone.utc) - review) if review else None))
        moment = slot.at
    return runs


def describe_planned_runs(settings: Settings, after: datetime, count: int = 5) -> list[str]:
    """Lines for ``digest schedule --list``."""
    s = settings.schedule
    lines = [f'next {count} runs of "{s.cron}" in {settings.newsletter.timezone}:']
    for run in planned_runs(settings, after, count):
        line = f"  {run.slot.key:<16} {local_time(run.slot.at, settings)}"
        if run.review_at is not None:
            line += f"   [PREVIEW] to editors {local_time(run.review_at, settings)}"
        lines.append(line)
    return lines


# --- the scheduler -----------------------------------------------------------------------------

# The job functions are stored in the database by reference (module:function), so they are plain
# functions; they find the scheduler that runs them through this thread-local (jobs run in the
# scheduler's own thread).
_running = threading.local()


def _current() -> DigestScheduler:
    scheduler = getattr(_running, "scheduler", None)
    if scheduler is None:
        raise RuntimeError("digest's scheduled jobs run only inside a DigestScheduler")
    return scheduler


def scheduled_send() -> None:
    """The job at each slot: ingest, build and send the issue that is due."""
    _current().run_send()


def scheduled_review() -> None:
    """The job ``review_hours`` before each slot: the [PREVIEW] to the editors."""
    _current().run_review()


class DigestScheduler(BlockingScheduler):
    """APScheduler's BlockingScheduler with digest's jobs, a persistent job store in the state
    database, and a clean stop. ``clock`` and ``backend_factory`` are for tests and embedding."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock | None = None,
        backend_factory: Callable[[str], Backend] | None = None,
    ) -> None:
        # APScheduler wants a positive whole number of seconds.
        self._grace_seconds = max(1, round(settings.schedule.misfire_grace_hours * 3600))
        jobstore = SQLAlchemyJobStore(engine=store.engine)
        try:
            # Made here, not only at start: two schedulers starting together on a fresh database
            # would otherwise race to create it.
            jobstore.jobs_t.create(store.engine, checkfirst=True)
        except OperationalError:
            pass
        super().__init__(
            timezone=settings.newsletter.tz,
            jobstores={"default": jobstore, "local": MemoryJobStore()},
            executors={"default": DebugExecutor()},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self._grace_seconds,
            },
        )
        self.settings = settings
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.trigger = trigger_for(settings.schedule.cron, settings.newsletter.tz)
        self._backend_factory = backend_factory
        self._stop_reason: str | None = None
        self.startup_error: Exception | None = None
        self._reported_stale: set[str] = set()
        self.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)
        self.add_listener(self._on_missed, EVENT_JOB_MISSED)

    # -- stopping ---------------------------------------------------------------------------

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the scheduler to stop; safe to call from a signal handler (it only sets a flag).
        A send in progress finishes its current batch first."""
        self._stop_reason = reason

    @property
    def stopping(self) -> bool:
        return self._stop_reason is not None

    def _main_loop(self) -> None:
        # BlockingScheduler's loop, waiting through the clock and ending on request_stop().
        _running.scheduler = self
        wait_seconds: float | None = None
        try:
            while self.state != STATE_STOPPED and not self.stopping:
                self.clock.sleep(wait_seconds, self._event, lambda: self.stopping)
                self._event.clear()
                if self.stopping:
                    break
                wait_seconds = self._process_jobs()
        finally:
            _running.scheduler = None
        if self.state != STATE_STOPPED:
            log.info("stopping (%s)", self._stop_reason)
            self.shutdown(wait=True)

    # -- jobs -------------------------------------------------------------------------------

    def _on_started(self, _event: SchedulerEvent) -> None:
        # APScheduler logs and swallows a listener's error; without its jobs the scheduler would
        # idle silently, so stop instead and let run_scheduler report it.
        try:
            self._install_jobs()
        except Exception as exc:  # noqa: BLE001 - reported by run_scheduler
            self.startup_error = exc
            self.request_stop("could not set up the jobs")

    def _install_jobs(self) -> None:
        self._install(SEND_JOB, scheduled_send, self.trigger, "send the issue")
        hours = self.settings.schedule.review_hours
        if hours:
            self._install(REVIEW_JOB, scheduled_review, ReviewTrigger(self.trigger, hours), "[PREVIEW] to the editors")
        elif self.get_job(REVIEW_JOB, "default") is not None:
            self.remove_job(REVIEW_JOB, "default")
        now = self.clock.now()
        self.add_job(
            self.run_resume,
            IntervalTrigger(
                seconds=int(RESUME_EVERY.total_seconds()), start_date=now, timezone=self.settings.newsletter.tz
            ),
            id=RESUME_JOB,
            jobstore="local",
            next_run_time=now,
            replace_existing=True,
            misfire_grace_time=None,
        )
        send = self.get_job(SEND_JOB, "default")
        nxt = send.next_run_time if send is not None else None
        s = self.settings.schedule
        log.info(
            'scheduler started: next issue at %s (cron "%s" in %s, misfire grace %s%s)',
            local_time(nxt, self.settings) if nxt else "never",
            s.cron,
            self.settings.newsletter.timezone,
            _hours(s.misfire_grace_hours),
            f", [PREVIEW] {_hours(s.review_hours)} ahead to {', '.join(self.settings.newsletter.editors)}"
            if s.review_hours
            else "",
        )

    def _install(self, job_id: str, func: Callable[[], None], trigger: BaseTrigger, name: str) -> None:
        job: Job | None = self.get_job(job_id, "default")
        if job is not None and _same_trigger(job.trigger, trigger):
            # Keep the stored next run time: a slot that passed while the scheduler was down is
            # still due (within the grace period). Adding the job afresh would skip it.
            job.modify(func=func, name=name, coalesce=True, max_instances=1, misfire_grace_time=self._grace_seconds)
            return
        if job is not None:
            log.info("the schedule changed (%s → %s); runs follow the new one from now", job.trigger, trigger)
        self.add_job(func, trigger, id=job_id, name=name, jobstore="default", replace_existing=True)

    def _backend(self, folder: str) -> Backend | None:
        return self._backend_factory(folder) if self._backend_factory else None

    def run_send(self) -> None:
        now = self.clock.now()
        slot = due_slot(self.settings, now)
        previewed = bool(self.settings.schedule.review_hours) and self.store.issues.review(slot.key) is not None
        if self.settings.schedule.review_hours and not previewed and self.store.issues.get(slot.key) is None:
            log.warning("issue %s: no [PREVIEW] went to the editors before its slot; sending it anyway", slot.key)
        # After a preview, send what the editors saw: the articles stored then, not a fresh read.
        ingested, report = run_once(
            self.settings,
            self.store,
            as_of=now,
            now=now,
            clock=self.clock.now,
            backend=self._backend(slot.key),
            stop=lambda: self.stopping,
            read_sources=not previewed,
        )
        for source in ingested.failed:
            log.warning("%s", source.error)
        self._log_report(report, slot, now)

    def run_review(self) -> None:
        now = self.clock.now()
        slot = due_slot(self.settings, now + timedelta(hours=self.settings.schedule.review_hours))
        if self.store.issues.get(slot.key) is not None or self.store.issues.review(slot.key) is not None:
            log.info("issue %s: already previewed or sent; no [PREVIEW] now", slot.key)
            return
        for source in ingest(self.settings, self.store, now=now).failed:
            log.warning("%s", source.error)
        built = build_issue(self.settings, self.store, slot)
        n, least = len(built.issue.entries), self.settings.selection.min_articles
        if n < least:
            log.warning(
                "issue %s: only %d new article%s, fewer than selection.min_articles = %d; no [PREVIEW] sent, "
                "and at its slot the issue is skipped unless more arrive",
                slot.key,
                n,
                "" if n == 1 else "s",
                least,
            )
            return
        editors = self.settings.newsletter.editors
        if not self.store.issues.claim_review(slot.key, editors, now=now):
            return
        results = send_copies(
            self.settings,
            self.store,
            built,
            editors,
            now=now,
            subject_prefix="[PREVIEW] ",
            folder="preview",
            backend=self._backend(f"preview-{slot.key}"),
        )
        for r in results:
            if r.status != "sent":
                log.warning("issue %s: [PREVIEW] to %s not delivered: %s", slot.key, r.recipient, r.detail)
        log.info(
            "issue %s: [PREVIEW] sent to %s; it goes out at %s unless `digest hold %s`",
            slot.key,
            ", ".join(r.recipient for r in results if r.status == "sent") or "nobody",
            local_time(slot.at, self.settings),
            slot.key,
        )

    def run_resume(self) -> None:
        """Finish sends left unfinished (stopped, crashed, transient failures) within the grace."""
        now = self.clock.now()
        grace = timedelta(hours=self.settings.schedule.misfire_grace_hours)
        for row in self.store.issues.unfinished():
            if self.stopping:
                return
            if now - row.slot > grace:
                if row.key not in self._reported_stale:
                    self._reported_stale.add(row.key)
                    log.warning(
                        "issue %s was left unfinished and its slot (%s) is past the misfire grace of %s; "
                        "finish it by hand with: digest send --as-of %s",
                        row.key,
                        local_time(row.slot, self.settings),
                        _hours(self.settings.schedule.misfire_grace_hours),
                        row.slot.astimezone(self.settings.newsletter.tz).isoformat(timespec="minutes"),
                    )
                continue
            slot = Slot(row.key, row.slot)
            report = send_issue_exclusive(
                self.settings,
                self.store,
                slot,
                now=now,
                clock=self.clock.now,
                backend=self._backend(slot.key),
                stop=lambda: self.stopping,
            )
            if report.outcome != "claimed-elsewhere":
                self._log_report(report, slot, now)

    def _log_report(self, report: SendReport, slot: Slot, now: datetime) -> None:
        late = now - slot.at
        when = f" (slot {local_time(slot.at, self.settings)}" + (
            f", {_late(late)} late)" if late >= timedelta(minutes=1) else ")"
        )
        if report.outcome in ("sent", "resumed", "already-sent", "claimed-elsewhere"):
            log.info("%s%s", report.message, when)
        elif report.outcome == "incomplete" and self.stopping:
            log.warning(
                "%s%s; stopped on request: the rest is sent when the scheduler starts again", report.message, when
            )
        else:
            log.warning("%s%s", report.message, when)
        for email, detail in report.failures:
            log.warning("issue %s: failed: %s: %s", slot.key, email, detail)

    def _on_missed(self, event: JobExecutionEvent) -> None:
        run_time: datetime = event.scheduled_run_time
        late = self.clock.now() - run_time
        s = self.settings.schedule
        why = (
            f"the scheduler was not running then and started {_late(late)} later, "
            f"past schedule.misfire_grace_hours = {s.misfire_grace_hours:g}"
        )
        if event.job_id == SEND_JOB:
            slot = due_slot(self.settings, run_time)
            log.warning(
                "issue %s (slot %s) was not sent: %s. To send it anyway: digest run --as-of %s",
                slot.key,
                local_time(slot.at, self.settings),
                why,
                slot.at.astimezone(self.settings.newsletter.tz).isoformat(timespec="minutes"),
            )
        elif event.job_id == REVIEW_JOB:
            slot = due_slot(self.settings, run_time + timedelta(hours=s.review_hours))
            log.warning(
                "the [PREVIEW] of issue %s was not sent: %s; the issue still goes out at its slot", slot.key, why
            )


def _late(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def run_scheduler(settings: Settings, store: Store) -> None:
    """Run until SIGTERM or SIGINT (Ctrl-C); both stop cleanly."""
    scheduler = DigestScheduler(settings, store)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        scheduler.request_stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if scheduler.startup_error is not None:
        exc = scheduler.startup_error
        raise StateError(
            f"the scheduler could not set up its jobs in {store.safe_url}: {exc.__class__.__name__}: {exc}"
        )
    log.info("scheduler stopped")
