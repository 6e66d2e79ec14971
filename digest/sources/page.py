"""A single web page (a URL or a local HTML file), extracted with trafilatura."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date, datetime

import trafilatura

from digest.errors import SourceError
from digest.models import Article, Block
from digest.sources.base import Source
from digest.sources.http import fetch
from digest.sources.markup import html_blocks
from digest.sources.text import as_aware, clean_text, parse_loose_date


@dataclass(frozen=True)
class ExtractedPage:
    title: str
    body: tuple[Block, ...]
    url: str | None
    author: str | None
    date: date | None
    description: str | None
    image: str | None


def extract_page(html_text: str, *, url: str | None = None) -> ExtractedPage | None:
    """The article in an HTML page: title, body paragraphs and metadata; None when there is none."""
    doc = trafilatura.bare_extraction(html_text, url=url, with_metadata=True, include_comments=False)
    if doc is None:
        return None
    d = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    text = d.get("text") or ""
    body = html_blocks("".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line.strip()))
    return ExtractedPage(
        title=clean_text(d.get("title")),
        body=body,
        url=d.get("url") or url,
        author=clean_text(d.get("author")) or None,
        date=parse_loose_date(d["date"]) if d.get("date") else None,
        description=clean_text(d.get("description")) or None,
        image=d.get("image") or None,
    )


class PageSource(Source):
    def read(self, now: datetime) -> list[Article]:
        if self.settings.url:
            data, _ = fetch(self.settings.url, source=self.name)
            html_text = data.decode("utf-8", errors="replace")
        else:
            assert self.settings.path is not None
            try:
                html_text = self.settings.path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise SourceError(f"source {self.name!r}: cannot read {self.settings.path}: {exc.strerror}") from None
        page = extract_page(html_text, url=self.settings.url)
        if page is None or not page.title:
            raise SourceError(f"source {self.name!r}: no article with a title found at {self.location}")
        return [
            Article(
                id=page.url or f"file:{self.name}/{self.settings.path}",
                source=self.name,
                title=page.title,
                url=page.url,
                published=as_aware(page.date, self.tz) if page.date else now,
                date_is_first_seen=page.date is None,
                author=page.author,
                summary=page.description,
                image=page.image,
                body=page.body,
            )
        ]
