"""A single web page (a URL or a local HTML file), extracted with trafilatura.

trafilatura finds the article in the page and gives it back as its own small XML vocabulary
(``head``, ``p``, ``list/item``, ``quote``, ``table/row/cell``, ``lb``, ``hi``, ``ref``). Those are
renamed to their HTML equivalents and read by the same ``markup.html_blocks`` that reads feed
content, so every source yields body blocks by one set of rules: paragraphs in reading order,
subheadings marked.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlsplit

import trafilatura
from lxml import etree
from trafilatura.settings import Document

from digest.errors import SourceError
from digest.models import Article, Block
from digest.sources.base import Source, SourceResult, SourceState
from digest.sources.encoding import decode_document
from digest.sources.http import Fetcher
from digest.sources.identity import article_id, canonical_url
from digest.sources.markup import html_blocks, without_title
from digest.sources.text import as_aware, parse_loose_date
from digest.text import clean_text, is_body_opening

log = logging.getLogger(__name__)

PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"

# trafilatura's output vocabulary → HTML, for markup.html_blocks.
_TO_HTML = {
    "head": "h2",
    "list": "ul",
    "item": "li",
    "quote": "blockquote",
    "lb": "br",
    "hi": "i",
    "ref": "a",
    "code": "pre",
    "graphic": "img",
    "del": "s",
    "row": "p",
    "cell": "span",
}


@dataclass(frozen=True)
class ExtractedPage:
    title: str
    body: tuple[Block, ...]
    url: str | None
    author: str | None
    date: date | datetime | None
    description: str | None
    image: str | None
    language: str | None = None
    tags: tuple[str, ...] = ()


def trafilatura_blocks(body: etree._Element | None) -> tuple[Block, ...]:
    """Body blocks from trafilatura's XML body element.

    A table row becomes one paragraph, its cells separated by " · ". A table of data that comes
    before the first paragraph is left out: there it is an infobox or a fact sheet, and its first row must
    never become the lead a teaser is drawn from; further down, a table is content (a list of films,
    a schedule) and is kept.
    """
    if body is None:
        return ()
    tree = copy.deepcopy(body)
    seen_paragraph = False
    for el in list(tree.iter()):
        if not isinstance(el.tag, str):
            continue
        if el.tag == "p" and _has_text(el):
            seen_paragraph = True
        if el.tag == "table":
            # A table holding paragraphs is page layout: its paragraphs are the article.
            if not seen_paragraph and el.find(".//p") is None:
                _remove_keeping_tail(el)
                continue
        if el.tag == "row" and el.find(".//p") is None:
            filled = [c for c in el if c.tag == "cell" and _has_text(c)]
            for cell in filled[1:]:
                cell.text = " · " + (cell.text or "")
        el.tag = _TO_HTML.get(el.tag, el.tag)
        el.attrib.clear()
    tree.tag = "div"
    return html_blocks(etree.tostring(tree, encoding="unicode"))


def _has_text(el: etree._Element) -> bool:
    return any(fragment.strip() for fragment in el.itertext())


def _remove_keeping_tail(el: etree._Element) -> None:
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


def _page_date(value: str | None) -> date | datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    except ValueError:
        return parse_loose_date(value)


def extract_page(html_text: str, *, url: str | None = None) -> ExtractedPage | None:
    """The article in an HTML page: title, body blocks and metadata; None when there is none."""
    doc = trafilatura.bare_extraction(
        html_text, url=url, with_metadata=True, include_comments=False, include_tables=True
    )
    # None when trafilatura found no article (a dict only for its deprecated as_dict=True).
    if not isinstance(doc, Document):
        return None
    body = trafilatura_blocks(doc.body)
    if not body and doc.text:
        body = tuple(Block(clean_text(line)) for line in doc.text.splitlines() if clean_text(line))
    title = clean_text(doc.title)
    return ExtractedPage(
        title=title,
        body=without_title(body, title),
        url=doc.url or url,
        author=clean_text(doc.author) or None,
        date=_page_date(doc.date),
        description=clean_text(doc.description) or None,
        image=doc.image or None,
        language=doc.language or None,
        tags=tuple(clean_text(t) for t in (doc.categories or []) + (doc.tags or []) if clean_text(t)),
    )


def decode_page(data: bytes, charset: str | None = None) -> str:
    return decode_document(data, charset).text


def fetch_page(url: str, *, fetcher: Fetcher, source: str, user_agent: str | None = None) -> ExtractedPage | None:
    """Fetch a page and extract its article (for feeds with fetch_full)."""
    res = fetcher.get(url, source=source, user_agent=user_agent, accept=PAGE_ACCEPT)
    return extract_page(decode_page(res.body, res.charset), url=res.url)


def _same_site(a: str | None, b: str | None) -> bool:
    ha, hb = (urlsplit(a or "").hostname or ""), (urlsplit(b or "").hostname or "")
    return bool(ha) and ha.removeprefix("www.") == hb.removeprefix("www.")


class PageSource(Source):
    kind = "page"

    def collect(self, now: datetime, state: SourceState | None = None) -> SourceResult:
        state = state or SourceState()
        fetched_url: str | None = None
        etag = last_modified = moved = None
        if self.settings.url:
            res = self.fetch(state, accept=PAGE_ACCEPT)
            if res.not_modified:
                return SourceResult.unchanged(res, state)
            html_text = decode_page(res.body, res.charset)
            fetched_url, etag, last_modified, moved = (
                res.url,
                res.etag,
                res.last_modified,
                res.moved_to or state.moved_to,
            )
        else:
            html_text = decode_page(self.read_file())
        page = extract_page(html_text, url=fetched_url)
        if page is None or not page.title:
            raise SourceError(f"source {self.name!r}: no article with a title found at {self.location}")
        # The page's own canonical URL names it best, unless it points at another site.
        url = page.url if page.url and (fetched_url is None or _same_site(page.url, fetched_url)) else fetched_url
        url = url if canonical_url(url) else fetched_url
        summary = page.description
        if summary and page.body:
            summary = None if is_body_opening(summary, [b.text for b in page.body]) else summary
        article = Article(
            id=article_id(source=self.name, guid=None, url=url, title=page.title, body=page.body)
            if url
            else f"file:{self.name}/{self.settings.path.name if self.settings.path else ''}",
            source=self.name,
            title=page.title,
            url=url,
            published=as_aware(page.date, self.tz) if page.date else now,
            date_is_first_seen=page.date is None,
            author=page.author,
            summary=summary,
            image=page.image,
            tags=page.tags,
            language=page.language,
            body=page.body,
            origin=str(self.settings.path) if self.settings.path else None,
        )
        return SourceResult((article,), etag=etag, last_modified=last_modified, moved_to=moved)
