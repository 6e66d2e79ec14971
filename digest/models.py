"""The plain data that flows between pipeline stages: Article → Issue → RenderedIssue → DeliveryResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

BlockKind = Literal["p", "h"]


@dataclass(frozen=True)
class Block:
    """One piece of an article body in reading order: a paragraph (``p``) or a subheading (``h``)."""

    text: str
    kind: BlockKind = "p"


@dataclass(frozen=True)
class Article:
    """An article as ingested from a source, before any selection."""

    id: str
    source: str
    title: str
    published: datetime
    body: tuple[Block, ...] = ()
    url: str | None = None
    author: str | None = None
    dek: str | None = None
    summary: str | None = None
    image: str | None = None
    image_alt: str | None = None
    tags: tuple[str, ...] = ()
    section: str | None = None
    language: str | None = None
    updated: datetime | None = None
    origin: str | None = None
    date_is_first_seen: bool = False
    #: The summary was written by an editor (a front-matter ``summary``), not a feed's description;
    #: set by the source that read it, and the teaser takes it as it is.
    summary_by_editor: bool = False

    @property
    def paragraphs(self) -> tuple[str, ...]:
        return tuple(b.text for b in self.body if b.kind == "p")


@dataclass(frozen=True)
class Teaser:
    """A teaser in both forms: plain text, and HTML-safe markup."""

    text: str
    html: str


@dataclass(frozen=True)
class IssueEntry:
    article: Article
    teaser: Teaser


@dataclass(frozen=True)
class Skipped:
    """An article that was considered for an issue and left out, and why."""

    article: Article
    reason: str


@dataclass(frozen=True)
class Issue:
    """What one issue carries: its key (the scheduled slot), the moment it was built for, the entries."""

    key: str
    slot: datetime
    window_start: datetime
    entries: tuple[IssueEntry, ...]
    skipped: tuple[Skipped, ...] = ()

    @property
    def articles(self) -> tuple[Article, ...]:
        return tuple(e.article for e in self.entries)


@dataclass(frozen=True)
class RenderedIssue:
    """The rendered issue, once per issue. Per-recipient parts are placeholders filled in by
    :func:`digest.render.issue.personalise`."""

    key: str
    subject: str
    preheader: str
    html: str
    text: str


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one message: ``sent``, ``failed`` (permanent) or ``retry`` (transient)."""

    recipient: str
    status: Literal["sent", "failed", "retry"]
    message_id: str | None = None
    detail: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
