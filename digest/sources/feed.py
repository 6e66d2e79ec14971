"""Feeds: the :class:`FeedSource`, and the step from feed items to articles.

Reading a feed is two steps. :func:`~digest.sources.feed_items.parse_feed` turns a document's bytes
into :class:`~digest.sources.feed_items.FeedItem` values, the same shape whatever the format.
:func:`feed_articles` turns those into articles: identity (see :mod:`.identity`), body blocks, and
the summary kept only when it is more than the body's first words.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from digest.errors import SourceError
from digest.models import Article, Block
from digest.sources.base import Source, SourceResult, SourceState
from digest.sources.feed_items import FeedError, FeedItem, ParsedFeed, parse_feed
from digest.sources.identity import article_id, article_key, trusted_guids
from digest.sources.markup import html_blocks, text_blocks, without_title
from digest.sources.text import as_aware
from digest.text import is_body_opening, title_from_lead

# The feed items' types are re-exported: a feed is one thing to its readers.
__all__ = [
    "FEED_ACCEPT",
    "FeedError",
    "FeedItem",
    "FeedSource",
    "ParsedFeed",
    "derived_title",
    "feed_articles",
    "item_article",
    "parse_feed",
]

log = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, application/json;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
# fetch_full: at most this many item pages per source and run, newest first (the rest keep their stub).
FULL_PAGES_PER_RUN = 25


def _blocks(value: str, is_html: bool) -> tuple[Block, ...]:
    return html_blocks(value) if is_html else text_blocks(value)


def derived_title(body: Sequence[Block]) -> str:
    """A title for an item that has none (micro-blog posts): see :func:`digest.text.title_from_lead`."""
    return title_from_lead(next((b.text for b in body if b.kind == "p"), ""))


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
        image_width=item.image_width,
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
