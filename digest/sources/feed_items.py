"""Feed documents to items: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed through
:mod:`.jsonfeed`, each read into :class:`FeedItem` values of one shape whatever the format: title as
plain text, link absolute, dates timezone-aware. :mod:`.feed` turns the items into articles.

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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from digest.sources.encoding import decode_document, xml_as_utf8
from digest.sources.jsonfeed import JsonFeedError, looks_like_json, parse_json_feed, parse_rfc3339
from digest.text import clean_text, normalise_space

log = logging.getLogger(__name__)

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
    #: The image's width in pixels as the feed declares it (media:content / media:thumbnail).
    image_width: int | None = None
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
                image_width=_declared_width(e, _entry_image(e)),
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


def _declared_width(e: Any, url: str | None) -> int | None:
    """The width a Media RSS element gives the chosen image, when it gives one."""
    if not url:
        return None
    for m in [*(e.get("media_content") or []), *(e.get("media_thumbnail") or [])]:
        width = str(m.get("width") or "").strip()
        if _address(m, "url") == url and width.isdigit() and 0 < int(width) < 100_000:
            return int(width)
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
