"""Feeds: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed through :mod:`.jsonfeed`.

Reading a feed is two steps. :func:`parse_feed` turns a document's bytes into :class:`FeedItem`
values, the same shape whatever the format: title as plain text, link absolute, dates timezone-aware.
:func:`feed_articles` turns those into articles: identity (see :mod:`.identity`), body blocks, and
the summary kept only when it is more than the body's first words.

feedparser is called with HTML sanitising and relative-URI rewriting switched off: digest never
passes a feed's HTML on, it only reads the text out of it (``markup.html_blocks``) and resolves the
few URLs it keeps itself, and those two passes are a third of feedparser's time.
"""

from __future__ import annotations

import calendar
import html
import io
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from digest.errors import SourceError
from digest.models import Article, Block
from digest.sources.base import Source, SourceResult, SourceState
from digest.sources.encoding import decode_document, xml_as_utf8
from digest.sources.identity import article_id, article_key, trusted_guids
from digest.sources.jsonfeed import JsonFeedError, looks_like_json, parse_json_feed, parse_rfc3339
from digest.sources.markup import html_blocks, text_blocks, without_title
from digest.sources.text import as_aware
from digest.text import clean_text, is_body_opening, normalise_space

log = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, application/json;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
# A title made from the body when an item has none (micro-blog posts), at most this long.
DERIVED_TITLE_CHARS = 90
# fetch_full: at most this many item pages per source and run, newest first (the rest keep their stub).
FULL_PAGES_PER_RUN = 25
_FEED_ROOT = re.compile(r"\A\ufeff?\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(rss|feed|rdf:RDF)[\s>]", re.S)
_IMAGE_EXT = re.compile(r"\.(jpe?g|png|gif|webp|avif)(\?|$)", re.I)


class FeedError(ValueError):
    """The document is not a feed digest can read."""


@dataclass(frozen=True)
class FeedItem:
    """One entry of a feed, format-independent."""

    guid: str | None = None
    link: str | None = None
    title: str = ""
    published: datetime | None = None
    updated: datetime | None = None
    author: str | None = None
    summary: str = ""
    summary_is_html: bool = True
    content: str = ""
    content_is_html: bool = True
    image: str | None = None
    tags: tuple[str, ...] = ()
    language: str | None = None


@dataclass(frozen=True)
class ParsedFeed:
    format: str  # feedparser's version (rss20, atom10, rss090 ...) or json1 / json1.1
    title: str
    link: str | None
    language: str | None
    items: tuple[FeedItem, ...]
    problems: tuple[str, ...] = ()


# --- parsing -----------------------------------------------------------------------------------


def parse_feed(
    data: bytes, *, url: str | None = None, charset: str | None = None, content_type: str | None = None
) -> ParsedFeed:
    """Parse a feed document of any supported format. ``url`` is where it came from (the base for
    relative links), ``charset`` and ``content_type`` what the server said. Raises
    :class:`FeedError` with a one-line reason when the document is not a feed."""
    if not data.strip():
        raise FeedError("the document is empty")
    if (content_type or "").endswith("json") or looks_like_json(data):
        return _parse_json(data, url=url)
    return _parse_xml(data, url=url, charset=charset)


def _parse_json(data: bytes, *, url: str | None) -> ParsedFeed:
    try:
        jf = parse_json_feed(data)
    except JsonFeedError as exc:
        raise FeedError(str(exc)) from None
    base = url or jf.feed_url or jf.home_page_url
    items = []
    for it in jf.items:
        image = (
            it.image
            or it.banner_image
            or next((a.url for a in it.attachments if a.mime_type.startswith("image/")), None)
        )
        items.append(
            FeedItem(
                guid=it.id,
                link=_absolute(it.url or it.external_url, base),
                # JSON Feed titles are plain text: "<b> and <i>" there is about tags, not markup.
                # Entities are decoded, as generators often HTML-escape into JSON anyway.
                title=normalise_space(html.unescape(it.title or "")),
                published=it.date_published,
                updated=it.date_modified,
                author=", ".join(it.authors or jf.authors) or None,
                summary=it.summary or "",
                summary_is_html=False,
                content=it.content_html or it.content_text or "",
                content_is_html=bool(it.content_html),
                image=_absolute(image, base),
                tags=_unique(clean_text(t) for t in it.tags),
                language=it.language or jf.language,
            )
        )
    return ParsedFeed(
        f"json{jf.version}", clean_text(jf.title), jf.home_page_url, jf.language, tuple(items), jf.problems
    )


def _parse_xml(data: bytes, *, url: str | None, charset: str | None) -> ParsedFeed:
    decoded = decode_document(data, charset)
    headers = {"content-type": "application/xml; charset=utf-8"}
    if url:
        # feedparser resolves relative links against Content-Location when it reads a stream.
        headers["content-location"] = url
    # A stream, never the bytes themselves: given bytes, feedparser first tries them as a file name.
    parsed = feedparser.parse(
        io.BytesIO(xml_as_utf8(decoded.text)),
        response_headers=headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    problems: list[str] = []
    if not parsed.entries and not parsed.get("version"):
        if _FEED_ROOT.match(decoded.text):
            # A feed with no channel or entries at all (an empty RDF 0.9 file): nothing to read.
            return ParsedFeed("xml", "", None, None, ())
        raise FeedError(_not_a_feed_reason(decoded.text, parsed))
    if parsed.get("bozo") and parsed.entries:
        problems.append(f"the XML is broken ({_bozo(parsed)}); read what could be recovered")
    feed = parsed.feed
    home = _absolute(feed.get("link"), url)
    base = url or home
    language = feed.get("language") or None
    raw_links: list[str | None] | None = None
    items = []
    for n, e in enumerate(parsed.entries):
        link = _entry_link(e, atom=str(parsed.get("version", "")).startswith("atom"))
        if link and urlsplit(link).scheme.lower() not in ("http", "https", ""):
            # feedparser takes a <link uri="at://..."> attribute over the element's text (Bluesky
            # feeds do this); the text is the web address readers want.
            raw_links = raw_links if raw_links is not None else _rss_link_texts(decoded.text)
            link = raw_links[n] if n < len(raw_links) else None
        items.append(
            FeedItem(
                guid=(e.get("id") or "").strip() or None,
                link=_absolute(link, base),
                title=clean_text(e.get("title")),
                published=_entry_date(e, "published", "created"),
                updated=_entry_date(e, "updated"),
                author=_author(e) or _author(feed),
                summary=e.get("summary") or "",
                summary_is_html=_is_html(e.get("summary_detail")),
                content=_best_content(e),
                content_is_html=_is_html(_best_content_detail(e)),
                image=_absolute(_entry_image(e), _content_base(e) or _absolute(link, base) or base),
                tags=_unique(clean_text(t.get("term") or t.get("label")) for t in e.get("tags") or []),
                language=_entry_language(e) or language,
            )
        )
    return ParsedFeed(
        parsed.get("version") or "xml", clean_text(feed.get("title")), home, language, tuple(items), tuple(problems)
    )


def _bozo(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    msg = getattr(exc, "getMessage", lambda: str(exc))()
    line = getattr(exc, "getLineNumber", lambda: None)()
    return f"{msg} at line {line}" if line else str(msg)


def _not_a_feed_reason(text: str, parsed: Any) -> str:
    head = text[:2048].lstrip("\ufeff \t\r\n").lower()
    if re.search(r"<opml[\s>]", head):
        return "an OPML subscription list, not a feed (add its feeds one by one as [[sources]])"
    if head.startswith("<!doctype html") or re.search(r"<html[\s>]", head):
        alt = re.search(
            r"""<link[^>]+type=["']application/(?:rss|atom)\+xml["'][^>]*href=["']([^"']+)["']|<link[^>]+href=["']([^"']+)["'][^>]*type=["']application/(?:rss|atom)\+xml["']""",
            text[:200_000],
            re.I,
        )
        hint = f"; the page names its feed: {alt.group(1) or alt.group(2)}" if alt else ""
        return f"an HTML page, not a feed{hint}"
    if parsed.get("bozo"):
        return f"not a feed: XML error: {_bozo(parsed)}"
    return "not a feed: no RSS, Atom or RDF root element"


def _absolute(link: str | None, base: str | None) -> str | None:
    """An absolute http(s) URL, or None when ``link`` cannot be made one."""
    if not link:
        return None
    link = link.strip()
    if base and not urlsplit(link).scheme:
        link = urljoin(base, link)
    return link if urlsplit(link).scheme.lower() in ("http", "https") and urlsplit(link).netloc else None


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _is_html(detail: Any) -> bool:
    return not detail or detail.get("type", "text/html") != "text/plain"


def _address(detail: Any, key: str) -> str | None:
    """A non-empty string at ``key`` of one of feedparser's (untyped) dicts, else None."""
    value = detail.get(key)
    return value if isinstance(value, str) and value else None


def _entry_link(e: Any, *, atom: bool) -> str | None:
    link = _address(e, "link")
    if link and atom and not any(_address(x, "href") for x in e.get("links") or []):
        # feedparser makes an Atom entry's id its link when it has no <link>; an Atom id is a
        # name, not an address (RFC 4287 §4.2.6), unlike an RSS guid, which is a permalink unless
        # it says otherwise.
        return None
    if link:
        return link
    for candidate in e.get("links") or []:
        href = _address(candidate, "href")
        if candidate.get("rel", "alternate") == "alternate" and href:
            return href
    return None


def _rss_link_texts(text: str) -> list[str | None]:
    """The text of each RSS <item>'s <link>, in order, read straight from the XML."""
    from lxml import etree

    try:
        root = etree.fromstring(
            xml_as_utf8(text), etree.XMLParser(recover=True, resolve_entities=False, no_network=True)
        )
    except etree.XMLSyntaxError:
        return []
    if root is None:
        return []
    out: list[str | None] = []
    for item in root.iter("{*}item"):
        link = next((c for c in item if isinstance(c.tag, str) and etree.QName(c).localname == "link"), None)
        out.append((link.text or "").strip() or None if link is not None else None)
    return out


def _struct_to_datetime(t: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(calendar.timegm(t), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse_feed_date(value: str) -> datetime | None:
    """A date as feeds write it when feedparser could not read it: RFC 822 or ISO 8601."""
    v = normalise_space(value)
    if not v:
        return None
    for parse in (
        parsedate_to_datetime,
        lambda s: parse_rfc3339(s),
        lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")),
    ):
        try:
            return parse(v)
        except (TypeError, ValueError, IndexError):
            continue
    return None


def _entry_date(e: Any, *keys: str) -> datetime | None:
    for key in keys:
        # dict.get: feedparser's own lookup of "updated" falls back to "published" (with a
        # DeprecationWarning); here an absent date must stay absent.
        parsed, raw = dict.get(e, f"{key}_parsed"), dict.get(e, key)
        when = _struct_to_datetime(parsed) if parsed else None
        if when is None and raw:
            when = parse_feed_date(str(raw))
            if when is not None and when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
        if when is not None:
            return when
    return None


def _author(e: Any) -> str | None:
    detail = e.get("author_detail") or {}
    name = clean_text(detail.get("name"))
    if name:
        return name
    # An author given only as an e-mail address is not named in the digest.
    raw = clean_text(e.get("author"))
    return raw if raw and "@" not in raw else None


def _best_content_detail(e: Any) -> Any:
    contents = [c for c in e.get("content") or [] if c.get("value")]
    return max(contents, key=lambda c: len(c["value"]), default=None)


def _best_content(e: Any) -> str:
    best = _best_content_detail(e)
    return best["value"] if best else ""


def _content_base(e: Any) -> str | None:
    """The xml:base in force where the entry's content was (feedparser records it)."""
    detail = _best_content_detail(e) or e.get("summary_detail") or {}
    base = detail.get("base") or ""
    return base if urlsplit(base).scheme in ("http", "https") else None


def _entry_language(e: Any) -> str | None:
    for key in ("content", "summary_detail", "title_detail"):
        v = e.get(key)
        detail = v[0] if isinstance(v, list) and v else v
        if isinstance(detail, dict) and detail.get("language"):
            return str(detail["language"])
    return None


def _entry_image(e: Any) -> str | None:
    for m in e.get("media_content") or []:
        url = _address(m, "url")
        if url and (
            m.get("medium") == "image" or str(m.get("type", "")).startswith("image/") or _IMAGE_EXT.search(url)
        ):
            return url
    for link in e.get("links") or []:
        href = _address(link, "href")
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/") and href:
            return href
    for m in e.get("media_thumbnail") or []:
        if url := _address(m, "url"):
            return url
    image = e.get("image")
    if isinstance(image, dict) and (href := _address(image, "href")):
        return href
    html = _best_content(e) or e.get("summary") or ""
    m = re.search(r"""<img\b[^>]*?\bsrc\s*=\s*["']([^"']+)["']""", html, re.I)
    return m.group(1) if m else None


# --- items → articles --------------------------------------------------------------------------


def _blocks(value: str, is_html: bool) -> tuple[Block, ...]:
    return html_blocks(value) if is_html else text_blocks(value)


def derived_title(body: Sequence[Block]) -> str:
    """A title for an item that has none: its first sentence, cut at a word within bounds."""
    first = next((b.text for b in body if b.kind == "p"), "")
    sentence = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0]
    if len(sentence) <= DERIVED_TITLE_CHARS:
        return sentence
    cut = sentence[: DERIVED_TITLE_CHARS - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + "…"


def feed_articles(
    feed: ParsedFeed, *, source: str, now: datetime, feed_url: str | None = None
) -> tuple[list[Article], list[str]]:
    """The articles of a parsed feed, and one line per kind of item that could not be used."""
    problems = list(feed.problems)
    guids = trusted_guids((i.guid for i in feed.items), feed_links=(feed.link, feed_url))
    built: list[tuple[FeedItem, Article]] = []
    empty: list[int] = []
    for n, item in enumerate(feed.items):
        art = item_article(item, source=source, now=now, trusted_guid=item.guid if item.guid in guids else None)
        if art is None:
            empty.append(n + 1)
        else:
            built.append((item, art))
    # Items whose ids collide only because canonical URLs drop the fragment are anchors on one
    # page: they keep their fragments.
    by_id: dict[str, set[str]] = {}
    for item, art in built:
        by_id.setdefault(art.id, set()).add((item.guid if item.guid in guids else None) or item.link or "")
    clashing = {i for i, raws in by_id.items() if len(raws) > 1}
    articles: list[Article] = []
    seen: set[str] = set()
    for item, art in built:
        if art.id in clashing:
            trusted = item.guid if item.guid in guids else None
            art = replace(
                art,
                id=article_id(
                    source=source, guid=trusted, url=item.link, title=art.title, body=art.body, keep_fragment=True
                ),
            )
        if art.id in seen:
            log.debug("source %r: %s appears twice; kept the first", source, art.id)
            continue
        seen.add(art.id)
        articles.append(art)
    if empty:
        which = ", ".join(map(str, empty[:5])) + (", ..." if len(empty) > 5 else "")
        problems.append(f"{len(empty)} item(s) with no title, text or link skipped (item {which})")
    undated = sum(1 for a in articles if a.date_is_first_seen)
    if undated:
        log.info("source %r: %d item(s) carry no date; dated by when they were first seen", source, undated)
    return articles, problems


def item_article(item: FeedItem, *, source: str, now: datetime, trusted_guid: str | None) -> Article | None:
    content = _blocks(item.content, item.content_is_html) if item.content else ()
    summary_blocks = _blocks(item.summary, item.summary_is_html) if item.summary else ()
    body = content or summary_blocks
    summary: str | None = None
    if content and summary_blocks:
        text = " ".join(b.text for b in summary_blocks)
        summary = None if is_body_opening(text, [b.text for b in content]) else text
    body = without_title(body, item.title) if item.title else body
    title = item.title or (derived_title(body) if body else "")
    if not title:
        if not item.link:
            return None
        title = item.link
    published = item.published or item.updated
    return Article(
        id=article_id(source=source, guid=trusted_guid, url=item.link, title=title, body=body),
        source=source,
        title=title,
        url=item.link,
        published=published or now,
        updated=item.updated,
        author=item.author,
        summary=summary,
        image=item.image,
        tags=item.tags,
        language=item.language,
        body=body,
        date_is_first_seen=published is None,
    )


# --- the source --------------------------------------------------------------------------------


class FeedSource(Source):
    kind = "feed"

    def collect(self, now: datetime, state: SourceState | None = None) -> SourceResult:
        state = state or SourceState()
        etag = last_modified = moved = url = charset = content_type = None
        if self.settings.url:
            res = self.fetch(state, accept=FEED_ACCEPT)
            if res.not_modified:
                return SourceResult.unchanged(res, state)
            data, where = res.body, res.url
            url, charset, content_type = res.url, res.charset, res.content_type
            etag, last_modified, moved = res.etag, res.last_modified, res.moved_to or state.moved_to
        else:
            data, where = self.read_file(), str(self.settings.path)
        try:
            feed = parse_feed(data, url=url, charset=charset, content_type=content_type)
        except FeedError as exc:
            raise SourceError(f"source {self.name!r}: {where}: {exc}") from None
        articles, problems = feed_articles(feed, source=self.name, now=now, feed_url=url)
        if self.settings.fetch_full:
            articles, more = self._full_pages(articles, state)
            problems += more
        return SourceResult(
            tuple(articles), etag=etag, last_modified=last_modified, moved_to=moved, problems=tuple(problems)
        )

    def _full_pages(self, articles: list[Article], state: SourceState) -> tuple[list[Article], list[str]]:
        """Replace stubs with the article extracted from each new item's page. Items already
        stored are left out: their stored full text stands, and their pages are not fetched again."""
        from digest.sources.page import fetch_page

        fresh = [a for a in articles if article_key("id", a.id) not in state.known_keys]
        fresh.sort(key=lambda a: a.published, reverse=True)
        problems: list[str] = []
        out: list[Article] = []
        for n, a in enumerate(fresh):
            if not a.url or n >= FULL_PAGES_PER_RUN:
                out.append(a)
                continue
            try:
                page = fetch_page(a.url, fetcher=self.fetcher, source=self.name, user_agent=self.settings.user_agent)
            except SourceError as exc:
                problems.append(f"{a.url}: full text not fetched, kept the feed's text: {exc}")
                out.append(a)
                continue
            page_text = sum(len(b.text) for b in page.body) if page else 0
            if page is None or page_text <= sum(len(b.text) for b in a.body):
                out.append(a)
                continue
            stub = " ".join(b.text for b in a.body)
            out.append(
                replace(
                    a,
                    body=page.body,
                    summary=a.summary or (None if is_body_opening(stub, [b.text for b in page.body]) else stub or None),
                    image=a.image or page.image,
                    author=a.author or page.author,
                    date_is_first_seen=a.date_is_first_seen and page.date is None,
                    published=a.published
                    if not a.date_is_first_seen or page.date is None
                    else as_aware(page.date, self.tz),
                )
            )
        return out, problems
