"""The plain data that flows between pipeline stages: Article → Issue → RenderedIssue → DeliveryResult."""

from __future__ import annotations

import html as htmllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from digest.text import title_from_lead

BlockKind = Literal["p", "h"]

# Placeholders the rendered issue carries where each recipient's unsubscribe token and address go.
TOKEN_MARK = "DIGEST-RECIPIENT-TOKEN"
EMAIL_MARK = "digest-recipient-address@digest.invalid"
# Where the recipient's name (or the newsletter's name_fallback) goes; letters only, so no escaping
# or MJML step changes it.
NAME_MARK = "DigestRecipientNameMark"
# The longest subject line an issue may have; anything longer is cut between words.
MAX_SUBJECT = 150


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
    #: The image's natural width in pixels, when known: it is shown no wider (up to the column).
    image_width: int | None = None
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

    @property
    def display_title(self) -> str:
        """The title readers see: the article's own, else the first sentence of its lead, else
        the source's name and the date. Only for showing: ``title`` stays empty, so the teaser
        does not take the lead's first sentence for a repeat of the headline."""
        if self.title.strip():
            return self.title
        lead = next(iter(self.paragraphs), "")
        return title_from_lead(lead) or f"{self.source}, {self.published:%d %B %Y}"


@dataclass(frozen=True)
class StoredArticle:
    """What deciding whether an incoming article is new needs to know of one already stored."""

    id: str
    source: str
    content_hash: str
    first_seen: datetime
    published: datetime
    #: Characters of body text: a copy from another source replaces this one only with more text.
    body_chars: int


@dataclass(frozen=True)
class KnownArticles:
    """What the store holds for a batch's recognition keys and ids (see digest.sources.identity)."""

    #: recognition key → id of the article it belongs to
    owners: Mapping[str, str]
    #: article id → the stored article
    by_id: Mapping[str, StoredArticle]


@dataclass(frozen=True)
class ArticleWrite:
    """An article to write as it is (its id is the row's), with the first-seen time and content hash to keep."""

    article: Article
    first_seen: datetime
    content_hash: str


@dataclass(frozen=True)
class ArticleKey:
    """One way an article is recognised, recorded for the source that offered it."""

    key: str
    article_id: str
    source: str


@dataclass(frozen=True)
class UpsertReport:
    """What storing one source's batch did."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    # Copies of articles already stored from another source, not stored again.
    duplicates: int = 0


@dataclass(frozen=True)
class UpsertPlan:
    """The writes that store a batch: new rows, rows replaced in place, keys to record."""

    inserts: tuple[ArticleWrite, ...]
    updates: tuple[ArticleWrite, ...]
    keys: tuple[ArticleKey, ...]
    report: UpsertReport


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
class IssueEdits:
    """The editor's choices for one upcoming issue: a pinned lead story, articles left out, an
    order for the others (article ids), and the subject and editor's note. Empty: the defaults."""

    issue_key: str
    pinned: str | None = None
    dropped: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    subject: str | None = None
    note: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.pinned or self.dropped or self.order or self.subject or self.note)


@dataclass(frozen=True)
class Issue:
    """What one issue carries: its key (the scheduled slot), the moment it was built for, the entries."""

    key: str
    slot: datetime
    window_start: datetime
    entries: tuple[IssueEntry, ...]
    skipped: tuple[Skipped, ...] = ()
    #: The editor's own subject and note for this issue (``digest issue subject|note``); None: the defaults.
    subject: str | None = None
    note: str | None = None
    #: The article the editor pinned as the lead story (its id), if any.
    pinned: str | None = None

    @property
    def articles(self) -> tuple[Article, ...]:
        return tuple(e.article for e in self.entries)


@dataclass(frozen=True)
class RenderedIssue:
    """The rendered issue, once per issue. Per-recipient parts are the placeholders
    :data:`TOKEN_MARK` and :data:`EMAIL_MARK`, filled in by :meth:`personalise` (or, on the fast
    path, by digest.delivery.mime)."""

    key: str
    subject: str
    preheader: str
    html: str
    text: str

    def personalise(self, *, email: str, token: str, name: str = "") -> tuple[str, str]:
        """The issue's HTML and text with one recipient's token, address and name filled in."""
        html = self.html.replace(TOKEN_MARK, token).replace(EMAIL_MARK, htmllib.escape(email))
        text = self.text.replace(TOKEN_MARK, token).replace(EMAIL_MARK, email)
        return html.replace(NAME_MARK, htmllib.escape(name)), text.replace(NAME_MARK, name)


#: How a stored failure text begins when the failure was ours (a message we could not make or
#: send, e.g. an address that needs SMTPUTF8 on a server without it) rather than the receiving
#: side's refusal of that recipient. Retries that never succeeded are ours too ("gave up after").
OUR_FAILURE = "not sent: "
_OURS = (OUR_FAILURE, "gave up after ")


def failed_on_our_side(detail: str | None) -> bool:
    """Whether a failed delivery's stored text says we failed it (not a refusal by the
    receiving side): such a send ends with a non-zero exit status."""
    return (detail or "").startswith(_OURS)


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one message: ``sent``, ``failed`` (permanent) or ``retry`` (transient).
    ``extra["ours"]`` on a failure: we failed it, the receiving side did not refuse it."""

    recipient: str
    status: Literal["sent", "failed", "retry"]
    message_id: str | None = None
    detail: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
