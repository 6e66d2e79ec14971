"""What the repositories hand out: frozen records named after their columns, never database rows."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

Record = TypeVar("Record")


def record_from_row(kind: type[Record], row: Any) -> Record:
    """The record ``kind`` made from a row that has (at least) a column for each of its fields."""
    mapping = row._mapping
    return kind(**{f.name: mapping[f.name] for f in fields(kind)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class SourceRecord:
    """What the last reads of a source left: its validators, where it moved, its health."""

    name: str
    location: str | None
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failures: int
    etag: str | None
    last_modified: str | None
    moved_to: str | None
    last_checked: datetime | None
    last_note: str | None


@dataclass(frozen=True)
class IssueRecord:
    """An issue as recorded when its send began (or when it was skipped), with its rendered text."""

    key: str
    slot: datetime
    status: str  # sending | sent | skipped
    subject: str | None
    preheader: str | None
    html: str | None
    text: str | None
    created_at: datetime
    finished_at: datetime | None
    note: str | None


@dataclass(frozen=True)
class IssueSummary:
    """An issue without its rendered text, for lists."""

    key: str
    slot: datetime
    status: str
    subject: str | None
    preheader: str | None
    note: str | None
    # When the send began and when it finished (None while sending, or for a skipped issue).
    created_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ArchivedIssue:
    """An issue in the public archive: what its index and feed show."""

    key: str
    slot: datetime
    status: str
    subject: str | None
    preheader: str | None
    created_at: datetime
    finished_at: datetime | None
    articles: int


@dataclass(frozen=True)
class HoldRecord:
    issue_key: str
    created_at: datetime
    note: str | None


@dataclass(frozen=True)
class ReviewRecord:
    issue_key: str
    sent_at: datetime
    #: The editors' addresses, as a JSON list.
    recipients: str


@dataclass(frozen=True)
class SubscriberRecord:
    email: str
    name: str | None
    status: str  # active | unsubscribed | bounced | complained
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SubscriberEventRecord:
    """One change of a subscriber's status: when, to what, from where, why."""

    at: datetime
    status: str
    origin: str  # import | form | one-click | webhook | bounce-mailbox | cli | delivery | migration
    reason: str | None


@dataclass(frozen=True)
class ImportReport:
    """What adding addresses did, per address: ``added``; ``present`` (already active);
    ``kept_out`` (address, why) for those who left or were removed, who an import never brings back."""

    added: list[str]
    present: list[str]
    kept_out: list[tuple[str, str]]


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery's state, as `digest status` shows it."""

    email: str
    status: str  # pending | inflight | sent | failed | retry | skipped
    attempts: int
    detail: str | None
    next_attempt: datetime | None
    interrupted: int


@dataclass(frozen=True)
class LeaseRecord:
    name: str
    owner: str
    acquired_at: datetime
    expires_at: datetime
