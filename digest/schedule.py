"""The scheduler: sends each issue at its slot, by itself, exactly once.

A ``CronTrigger`` made from ``[schedule] cron`` in the newsletter's IANA time zone says when each
slot is (so a daylight-saving change moves nothing: 08:00 stays 08:00 local). The jobs live in an
APScheduler ``SQLAlchemyJobStore`` in the state database, so a slot that passed while the scheduler
was down is still known when it starts again: within ``misfire_grace_hours`` the issue goes out
late (once: ``coalesce``), past it the log says it was missed and how to send it by hand.

:class:`DigestScheduler` owns an APScheduler 3.x ``BackgroundScheduler`` and uses only its public
API: it is started paused, as the keeper of the jobs (``add_job``, ``get_jobs``, ``modify_job``),
and the waiting and running is our own loop, which asks each job's trigger for its fire times
(``get_next_fire_time``) and reads the time from an injectable :class:`Clock`. APScheduler reads
the system clock deep inside its own loop and offers no way to replace it, so running its loop
would tie the tests to its private modules; this split leaves nothing a minor release could move.

Exactly once, whatever runs: every send goes through :func:`digest.pipeline.run_once`, which holds
the issue's lease in the database while it ingests, builds and sends. A restart, a second
scheduler process over the same database or a manual ``digest run`` for the same slot finds the
lease taken, or the issue already sent, and sends nothing.

Jobs run in the thread that called :meth:`DigestScheduler.start`: one send at a time, and
SIGTERM/SIGINT only set a flag that the send checks between batches — the batch in flight is
finished and recorded, the rest stays pending, and the next start resumes it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest.clock import Clock, SystemClock
from digest.config import Settings
from digest.delivery.base import Backend
from digest.errors import StateError
from digest.pipeline import (
    SendReport,
    Slot,
    due_slot,
    run_once,
    send_issue_exclusive,
    upcoming_slot,
)
from digest.review import ReviewTrigger, review_slot, send_review
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


# --- triggers ----------------------------------------------------------------------------------


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

# The jobs are stored in the state database by reference (module:function), so they are plain
# functions; the loop calls each with the DigestScheduler that runs it. APScheduler checks, when
# a job is added, that its function can be called with the job's stored arguments, so the
# ``scheduler`` argument is stored as None and the loop passes the running one.
_JOB_KWARGS: dict[str, None] = {"scheduler": None}


@dataclass(frozen=True)
class JobRun:
    """What a listener hears after each due run of a job: ``missed`` when it was past its grace
    period and did not run."""

    job_id: str
    scheduled_at: datetime
    missed: bool


class DigestScheduler:
    """Digest's jobs in a persistent job store in the state database, run at their times by
    :meth:`start` until :meth:`request_stop`. ``clock`` and ``backend_factory`` are for tests and
    embedding."""

    # The job stores, in the order their due jobs run: the slot jobs persist in the state
    # database; the resume job is set up afresh by each process.
    PERSISTENT, LOCAL = "default", "local"

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
        jobstore = store.scheduler_jobs()
        self._jobs = BackgroundScheduler(
            timezone=settings.newsletter.tz,
            jobstores={self.PERSISTENT: jobstore, self.LOCAL: MemoryJobStore()},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": self._grace_seconds},
        )
        self.settings = settings
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.trigger = trigger_for(settings.schedule.cron, settings.newsletter.tz)
        self._backend_factory = backend_factory
        self._stop_reason: str | None = None
        self._wake = threading.Event()
        self._listeners: list[Callable[[JobRun], None]] = []
        # Unfinished issues past the grace whose log line was written (once per process).
        self.stale_reported: set[str] = set()

    # -- running and stopping ---------------------------------------------------------------

    def add_listener(self, listener: Callable[[JobRun], None]) -> None:
        """Call ``listener`` after each due run of a job (in the scheduler's thread)."""
        self._listeners.append(listener)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the scheduler to stop; safe to call from a signal handler (it only sets a flag).
        A send in progress finishes its current batch first."""
        self._stop_reason = reason

    @property
    def stopping(self) -> bool:
        return self._stop_reason is not None

    def wakeup(self) -> None:
        """Look at the jobs again now (after a change made from another thread)."""
        self._wake.set()

    def start(self) -> None:
        """Set up the jobs and run them at their times; returns after :meth:`request_stop`.
        Raises :class:`~digest.errors.StateError` when the jobs cannot be set up."""
        # Paused: APScheduler keeps the jobs; running them is the loop's work.
        self._jobs.start(paused=True)
        try:
            try:
                self._install_jobs()
            except Exception as exc:  # noqa: BLE001 - any failure here leaves a scheduler without jobs
                raise StateError(
                    f"the scheduler could not set up its jobs in {self.store.safe_url}: {exc.__class__.__name__}: {exc}"
                ) from exc
            while not self.stopping:
                self._run_due_jobs(self.clock.now())
                if self.stopping:
                    break
                self.clock.sleep(self._seconds_to_next_run(), self._wake, lambda: self.stopping)
                self._wake.clear()
            log.info("stopping (%s)", self._stop_reason)
        finally:
            # shutdown() wakes APScheduler's own thread, which then looks for due jobs once more by
            # the system clock (it skips that only while paused); with the job stores detached
            # first, it finds none to run or to move on.
            for alias in (self.PERSISTENT, self.LOCAL):
                self._jobs.remove_jobstore(alias)
            self._jobs.shutdown(wait=True)

    def _seconds_to_next_run(self) -> float | None:
        times = [job.next_run_time for job in self._jobs.get_jobs() if job.next_run_time is not None]
        return (min(times) - self.clock.now()).total_seconds() if times else None

    def _run_due_jobs(self, now: datetime) -> None:
        for alias in (self.PERSISTENT, self.LOCAL):
            for job in self._jobs.get_jobs(jobstore=alias):
                if job.next_run_time is not None and job.next_run_time <= now:
                    self._run_job(job, alias, now)

    def _run_job(self, job: Job, alias: str, now: datetime) -> None:
        # The times the job should have run up to now, as APScheduler's own loop counts them.
        run_times: list[datetime] = []
        moment: datetime | None = job.next_run_time
        while moment is not None and moment <= now:
            run_times.append(moment)
            moment = job.trigger.get_next_fire_time(moment, now)
        for run_time in run_times[-1:] if job.coalesce else run_times:
            grace = job.misfire_grace_time
            missed = grace is not None and now - run_time > timedelta(seconds=grace)
            if missed:
                self._report_missed(job.id, run_time)
            else:
                try:
                    job.func(scheduler=self)
                except Exception:  # noqa: BLE001 - one failed run must not end the scheduler
                    log.exception("the job %r (due %s) failed", job.name, local_time(run_time, self.settings))
            for listener in self._listeners:
                listener(JobRun(job.id, run_time, missed))
        following = job.trigger.get_next_fire_time(run_times[-1], now)
        if following is None:
            self._jobs.remove_job(job.id, alias)
        else:
            self._jobs.modify_job(job.id, alias, next_run_time=following)

    # -- jobs -------------------------------------------------------------------------------

    def _install_jobs(self) -> None:
        now = self.clock.now()
        self._install(SEND_JOB, scheduled_send, self.trigger, "send the issue", now)
        hours = self.settings.schedule.review_hours
        if hours:
            self._install(
                REVIEW_JOB, scheduled_review, ReviewTrigger(self.trigger, hours), "[PREVIEW] to the editors", now
            )
        elif self._jobs.get_job(REVIEW_JOB, self.PERSISTENT) is not None:
            self._jobs.remove_job(REVIEW_JOB, self.PERSISTENT)
        self._jobs.add_job(
            scheduled_resume,
            IntervalTrigger(
                seconds=int(RESUME_EVERY.total_seconds()), start_date=now, timezone=self.settings.newsletter.tz
            ),
            kwargs=_JOB_KWARGS,
            id=RESUME_JOB,
            name="finish unfinished sends",
            jobstore=self.LOCAL,
            next_run_time=now,
            replace_existing=True,
            misfire_grace_time=None,
        )
        send = self._jobs.get_job(SEND_JOB, self.PERSISTENT)
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

    def _install(
        self, job_id: str, func: Callable[[DigestScheduler], None], trigger: BaseTrigger, name: str, now: datetime
    ) -> None:
        job: Job | None = self._jobs.get_job(job_id, self.PERSISTENT)
        if job is not None and _same_trigger(job.trigger, trigger):
            # Keep the stored next run time: a slot that passed while the scheduler was down is
            # still due (within the grace period). Adding the job afresh would skip it.
            self._jobs.modify_job(
                job_id,
                self.PERSISTENT,
                func=func,
                kwargs=_JOB_KWARGS,
                name=name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=self._grace_seconds,
            )
            return
        if job is not None:
            log.info("the schedule changed (%s → %s); runs follow the new one from now", job.trigger, trigger)
        self._jobs.add_job(
            func,
            trigger,
            kwargs=_JOB_KWARGS,
            id=job_id,
            name=name,
            jobstore=self.PERSISTENT,
            replace_existing=True,
            next_run_time=trigger.get_next_fire_time(None, now),
        )

    def backend_for(self, folder: str) -> Backend | None:
        """The backend a job sends through: the factory's, else None (the configured one)."""
        return self._backend_factory(folder) if self._backend_factory else None

    def _report_missed(self, job_id: str, run_time: datetime) -> None:
        late = self.clock.now() - run_time
        s = self.settings.schedule
        why = (
            f"the scheduler was not running then and started {_late(late)} later, "
            f"past schedule.misfire_grace_hours = {s.misfire_grace_hours:g}"
        )
        if job_id == SEND_JOB:
            slot = due_slot(self.settings, run_time)
            log.warning(
                "issue %s (slot %s) was not sent: %s. To send it anyway: digest run --as-of %s",
                slot.key,
                local_time(slot.at, self.settings),
                why,
                slot.at.astimezone(self.settings.newsletter.tz).isoformat(timespec="minutes"),
            )
        elif job_id == REVIEW_JOB:
            slot = review_slot(self.settings, run_time)
            log.warning(
                "the [PREVIEW] of issue %s was not sent: %s; the issue still goes out at its slot", slot.key, why
            )


# --- the jobs ----------------------------------------------------------------------------------


def scheduled_send(scheduler: DigestScheduler) -> None:
    """The job at each slot: ingest, build and send the issue that is due."""
    settings, store, now = scheduler.settings, scheduler.store, scheduler.clock.now()
    slot = due_slot(settings, now)
    previewed = bool(settings.schedule.review_hours) and store.issues.review(slot.key) is not None
    if settings.schedule.review_hours and not previewed and store.issues.get(slot.key) is None:
        log.warning("issue %s: no [PREVIEW] went to the editors before its slot; sending it anyway", slot.key)
    # After a preview, send what the editors saw: the articles stored then, not a fresh read.
    ingested, report = run_once(
        settings,
        store,
        as_of=now,
        now=now,
        clock=scheduler.clock.now,
        backend=scheduler.backend_for(slot.key),
        stop=lambda: scheduler.stopping,
        read_sources=not previewed,
    )
    for source in ingested.failed:
        log.warning("%s", source.error)
    _log_send(report, slot, now, settings, stopped=scheduler.stopping)


def scheduled_review(scheduler: DigestScheduler) -> None:
    """The job ``review_hours`` before each slot: the [PREVIEW] to the editors."""
    settings, now = scheduler.settings, scheduler.clock.now()
    slot = review_slot(settings, now)
    report = send_review(settings, scheduler.store, now=now, backend=scheduler.backend_for(f"preview-{slot.key}"))
    for error in report.source_errors:
        log.warning("%s", error)
    if report.outcome == "already-done":
        log.info("issue %s: already previewed or sent; no [PREVIEW] now", slot.key)
    elif report.outcome == "too-few":
        log.warning(
            "issue %s: %s; no [PREVIEW] sent, and at its slot the issue is skipped unless more arrive",
            slot.key,
            report.reason,
        )
    elif report.outcome == "sent":
        for r in report.results:
            if r.status != "sent":
                log.warning("issue %s: [PREVIEW] to %s not delivered: %s", slot.key, r.recipient, r.detail)
        log.info(
            "issue %s: [PREVIEW] sent to %s; it goes out at %s unless `digest hold %s`",
            slot.key,
            ", ".join(r.recipient for r in report.results if r.status == "sent") or "nobody",
            local_time(slot.at, settings),
            slot.key,
        )


def scheduled_resume(scheduler: DigestScheduler) -> None:
    """The job every :data:`RESUME_EVERY`: finish sends left unfinished (stopped, crashed,
    transient failures) within the grace."""
    settings, now = scheduler.settings, scheduler.clock.now()
    grace = timedelta(hours=settings.schedule.misfire_grace_hours)
    for row in scheduler.store.issues.unfinished():
        if scheduler.stopping:
            return
        if now - row.slot > grace:
            if row.key not in scheduler.stale_reported:
                scheduler.stale_reported.add(row.key)
                log.warning(
                    "issue %s was left unfinished and its slot (%s) is past the misfire grace of %s; "
                    "finish it by hand with: digest send --as-of %s",
                    row.key,
                    local_time(row.slot, settings),
                    _hours(settings.schedule.misfire_grace_hours),
                    row.slot.astimezone(settings.newsletter.tz).isoformat(timespec="minutes"),
                )
            continue
        slot = Slot(row.key, row.slot)
        report = send_issue_exclusive(
            settings,
            scheduler.store,
            slot,
            now=now,
            clock=scheduler.clock.now,
            backend=scheduler.backend_for(slot.key),
            stop=lambda: scheduler.stopping,
        )
        if report.outcome != "claimed-elsewhere":
            _log_send(report, slot, now, settings, stopped=scheduler.stopping)


def _log_send(report: SendReport, slot: Slot, now: datetime, settings: Settings, *, stopped: bool) -> None:
    late = now - slot.at
    when = f" (slot {local_time(slot.at, settings)}" + (
        f", {_late(late)} late)" if late >= timedelta(minutes=1) else ")"
    )
    if report.outcome in ("sent", "resumed", "already-sent", "claimed-elsewhere"):
        log.info("%s%s", report.message, when)
    elif report.outcome == "incomplete" and stopped:
        log.warning("%s%s; stopped on request: the rest is sent when the scheduler starts again", report.message, when)
    else:
        log.warning("%s%s", report.message, when)
    for email, detail in report.failures:
        log.warning("issue %s: failed: %s: %s", slot.key, email, detail)


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
    log.info("scheduler stopped")
