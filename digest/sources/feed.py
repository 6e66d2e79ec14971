"""RSS, Atom and RDF feeds through feedparser."""

from __future__ import annotations

import calendar
import logging
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urljoin

import feedparser

from digest.errors import SourceError
from digest.models import Article, Block
from digest.sources.base import Source
from digest.sources.http import fetch
from digest.sources.markup import html_blocks
from digest.sources.text import clean_text

log = logging.getLogger(__name__)


class FeedSource(Source):
    def read(self, now: datetime) -> list[Article]:
        if self.settings.url:
            data, headers = fetch(self.settings.url, source=self.name)
            parsed = feedparser.parse(data, response_headers={k.lower(): v for k, v in headers.items()})
            base = self.settings.url
        else:
            path = self.settings.path
            assert path is not None
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise SourceError(f"source {self.name!r}: cannot read {path}: {exc.strerror}") from None
            parsed = feedparser.parse(data)
            base = parsed.feed.get("link") or ""
        if parsed.bozo and not parsed.entries:
            reason = getattr(parsed, "bozo_exception", "not a feed")
            raise SourceError(f"source {self.name!r}: {self.location} is not a readable feed: {reason}")
        return [a for a in (entry_to_article(e, source=self.name, base=base, now=now) for e in parsed.entries) if a]


def _when(entry: Any, *keys: str) -> datetime | None:
    for key in keys:
        t = entry.get(key)
        if t:
            return datetime.fromtimestamp(calendar.timegm(t), tz=timezone.utc)
    return None


def entry_to_article(entry: Any, *, source: str, base: str, now: datetime) -> Article | None:
    title = clean_text(entry.get("title"))
    link = entry.get("link")
    url = urljoin(base, link) if link else None
    content = entry.get("content") or []
    content_html = content[0].get("value") if content else ""
    summary_html = entry.get("summary") or ""
    body = html_blocks(content_html or summary_html)
    if not title:
        first = next((b.text for b in body if b.kind == "p"), "")
        title = first[:80]
    if not title:
        return None
    published = _when(entry, "published_parsed", "updated_parsed")
    first_seen = published is None
    if first_seen:
        log.info("source %r: item %r has no date; using the time it was first seen", source, title)
    summary = clean_text(summary_html) if content_html and summary_html else None
    return Article(
        id=str(entry.get("id") or url or f"{source}:{title}"),
        source=source,
        title=title,
        url=url,
        published=published or now,
        updated=_when(entry, "updated_parsed"),
        author=clean_text(entry.get("author")) or None,
        summary=summary,
        tags=tuple(clean_text(t.get("term")) for t in entry.get("tags", []) if t.get("term")),
        body=body if body else (Block(title),),
        date_is_first_seen=first_seen,
    )
