"""The editors' [PREVIEW]: ``review_hours`` before a slot, the issue as it would go out, sent to
``newsletter.editors`` so that one of them can still ``digest hold`` it.

At most one preview per issue: the store's review claim decides, so a restart or a second
scheduler finds it claimed and sends nothing. At the slot the send uses the articles stored at
preview time, so the subscribers get what the editors saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from digest.config import Settings
from digest.delivery.base import Backend
from digest.models import DeliveryResult
from digest.pipeline import Slot, build_issue, due_slot, ingest, send_copies
from digest.select import too_few_articles
from digest.store import Store

#: ``already-done``: the issue was previewed or sent before; ``too-few``: fewer articles than
#: ``selection.min_articles``, so no preview; ``claimed``: another process holds the claim.
ReviewOutcome = Literal["already-done", "too-few", "claimed", "sent"]


@dataclass(frozen=True)
class ReviewReport:
    slot: Slot
    outcome: ReviewOutcome
    articles: int = 0
    source_errors: tuple[str, ...] = ()
    results: tuple[DeliveryResult, ...] = ()
    #: With ``too-few``: why the issue is too thin (select.too_few_articles's words).
    reason: str | None = None


# APScheduler 3.x ships no type hints, so mypy sees its BaseTrigger as Any.
class ReviewTrigger(BaseTrigger):  # type: ignore[misc]
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


def review_slot(settings: Settings, now: datetime) -> Slot:
    """The slot whose preview is due at ``now``."""
    return due_slot(settings, now + timedelta(hours=settings.schedule.review_hours))


def send_review(settings: Settings, store: Store, *, now: datetime, backend: Backend | None = None) -> ReviewReport:
    """Ingest, build the issue of the slot ``review_hours`` ahead and send it, marked [PREVIEW],
    to the editors."""
    slot = review_slot(settings, now)
    if store.issues.get(slot.key) is not None or store.issues.review(slot.key) is not None:
        return ReviewReport(slot, "already-done")
    errors = tuple(str(source.error) for source in ingest(settings, store, now=now).failed)
    built = build_issue(settings, store, slot)
    articles = len(built.issue.entries)
    too_few = too_few_articles(articles, settings.selection.min_articles)
    if too_few is not None:
        return ReviewReport(slot, "too-few", articles, errors, reason=too_few)
    editors = settings.newsletter.editors
    if not store.issues.claim_review(slot.key, editors, now=now):
        return ReviewReport(slot, "claimed", articles, errors)
    results = send_copies(
        settings, store, built, editors, now=now, subject_prefix="[PREVIEW] ", folder="preview", backend=backend
    )
    return ReviewReport(slot, "sent", articles, errors, tuple(results))
