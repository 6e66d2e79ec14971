"""Where each issue's sending stands, as typed records for ``digest status`` to print."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.store import Store

# The order ``digest status ISSUE`` lists the delivery states in: done first, then what is left.
STATUS_ORDER = ("sent", "failed", "retry", "pending", "inflight", "skipped")

# Gmail's bulk-sender guidelines: keep the spam rate reported in Postmaster Tools below 0.3%
# (https://support.google.com/a/answer/81126); Yahoo draws the same line.
COMPLAINT_LINE = 0.003


@dataclass(frozen=True)
class IssueSummary:
    key: str
    status: str
    note: str | None
    counts: dict[str, int]
    subject: str | None = None
    # When the send began and finished; None for a skipped issue (and finished_at while sending).
    sent_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def delivered(self) -> int:
        return self.counts.get("sent", 0)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    @property
    def pending(self) -> int:
        """Deliveries not settled yet: waiting, due for a retry, or in flight."""
        return sum(self.counts.get(s, 0) for s in ("pending", "retry", "inflight"))

    @property
    def duration_seconds(self) -> float | None:
        if self.sent_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.sent_at).total_seconds()


@dataclass(frozen=True)
class DeliveryLine:
    email: str
    detail: str | None
    attempts: int
    next_attempt: datetime | None


@dataclass(frozen=True)
class IssueStatus:
    key: str
    status: str
    counts: dict[str, int]
    # Deliveries that were in flight when a sender stopped: at most that many went out twice.
    interrupted: int
    failed: tuple[DeliveryLine, ...]
    retrying: tuple[DeliveryLine, ...]
    #: What came back: addresses per kind (hard-bounce, soft-bounce, complaint, unsubscribe).
    feedback: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def delivered(self) -> int:
        return self.counts.get("sent", 0)

    @property
    def bounced(self) -> int:
        return self.feedback.get("hard-bounce", 0) + self.feedback.get("soft-bounce", 0)

    @property
    def complaint_rate(self) -> float | None:
        """Complaints per delivered message; None before anything was delivered."""
        return self.feedback.get("complaint", 0) / self.delivered if self.delivered else None

    @property
    def over_complaint_line(self) -> bool:
        rate = self.complaint_rate
        return rate is not None and rate >= COMPLAINT_LINE


def recent_issues(store: Store) -> list[IssueSummary]:
    """The latest issues, newest first, with their delivery counts."""
    return [
        IssueSummary(
            r.key,
            r.status,
            r.note,
            store.deliveries.counts(r.key),
            subject=r.subject,
            sent_at=r.created_at if r.status != "skipped" else None,
            finished_at=r.finished_at if r.status != "skipped" else None,
        )
        for r in store.issues.recent()
    ]


def issue_status(store: Store, key: str) -> IssueStatus | None:
    """One issue's deliveries: counts, the failed ones with the server's words, the retries. None
    when there is no such issue."""
    row = store.issues.get(key)
    if row is None:
        return None

    def lines(status: str) -> tuple[DeliveryLine, ...]:
        return tuple(
            DeliveryLine(r.email, r.detail, r.attempts, r.next_attempt)
            for r in store.deliveries.with_status(key, (status,))
        )

    return IssueStatus(
        key,
        row.status,
        store.deliveries.counts(key),
        store.deliveries.interrupted_total(key),
        lines("failed"),
        lines("retry"),
        store.feedback.counts(key),
    )
