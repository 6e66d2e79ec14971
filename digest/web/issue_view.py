"""What the preview says about an issue: the articles chosen and left out (and why), its
warnings, and how a mail app in dark mode shows it. Plain functions of a built issue, apart from
the page and its server (digest.web.preview)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from digest.config import Settings
from digest.pipeline import BuiltIssue, Slot
from digest.render.links import safe_url
from digest.select import LEFT_OUT, too_few_articles
from digest.sources.health import source_health
from digest.store import Store

_DARK_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.IGNORECASE)
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)
# Gmail clips a message whose HTML is over about 102 KB and hides the rest behind a link.
CLIP_BYTES = 102 * 1024


@dataclass(frozen=True)
class ArticleLine:
    title: str
    source: str
    published: str
    url: str | None
    why: str
    #: The article's id, for the editor's forms; ``editor``: pinned, or left out, by the editor.
    id: str = ""
    editor: bool = False


def dark_variant(html: str) -> tuple[str, bool]:
    """The issue as a mail app in dark mode shows it. When the template declares dark styles
    (``prefers-color-scheme: dark``) they are switched on; when it declares none, the colours are
    inverted, as apps that force dark mode (Outlook, Gmail on phones) do. Returns (html, declared)."""
    declared = bool(_DARK_QUERY.search(html))
    if declared:
        html = _DARK_QUERY.sub("(min-width: 0px)", html)
        style = ":root{color-scheme:dark}"
    else:
        style = "html{background:#fff;filter:invert(1) hue-rotate(180deg)}img{filter:invert(1) hue-rotate(180deg)}"
    inject = f'<meta name="color-scheme" content="dark"><style>{style}</style>'
    m = _HEAD_END.search(html)
    return (html[: m.start()] + inject + html[m.start() :] if m else inject + html), declared


class _ImagesWithoutAlt(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.missing: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            a = dict(attrs)
            if a.get("alt") is None:
                self.missing.append(a.get("src") or "(no src)")


#: How far past an issue's slot the preview looks for articles held until their date.
FUTURE_LOOKAHEAD = timedelta(days=3660)


def issue_warnings(settings: Settings, store: Store, slot: Slot, built: BuiltIssue, html: str) -> list[str]:
    """What an editor should know before the issue goes: size, alt text, a thin week, failing
    sources, and whether the issue is held or already gone."""
    out: list[str] = []
    shared = store.shared_with(str(settings.config_path))
    if shared:
        out.append(shared)
    too_few = too_few_articles(len(built.issue.entries), settings.selection.min_articles)
    if too_few is not None:
        out.append(f"thin week: {too_few}; this issue would be skipped")
    size = len(html.encode("utf-8"))
    if size > CLIP_BYTES:
        out.append(f"the HTML is {size / 1024:.0f} KB; Gmail clips messages over 102 KB and hides the rest")
    for a in built.issue.articles:
        # Only about images the e-mail shows (render drops an address it cannot use).
        if safe_url(a.image) and not a.image_alt:
            out.append(
                f"“{a.display_title}” has an image without alt text (image_alt); readers who cannot see it get the title instead"
            )
    scan = _ImagesWithoutAlt()
    scan.feed(html)
    for src in scan.missing:
        out.append(f"an image in the HTML has no alt attribute: {src}")
    tz = settings.newsletter.tz
    for a in reversed(store.articles.published_between(slot.at, slot.at + FUTURE_LOOKAHEAD)):
        out.append(
            f"“{a.display_title}” ({a.source}) is dated {a.published.astimezone(tz):%a %-d %b %Y %H:%M}, "
            "after this issue: it is held until then"
        )
    for source in source_health(settings.sources, store.sources.all()):
        if source.failing_in_config and source.record is not None:
            out.append(f"source {source.name!r} is failing ({source.runs_in_a_row}): {source.record.last_error}")
    existing = store.issues.get(slot.key)
    if existing is not None:
        out.append(f"issue {slot.key} is already {existing.status}; this shows how it would render now")
    elif store.issues.is_held(slot.key):
        out.append(f"issue {slot.key} is on hold (digest hold): it will not go out at its slot")
    return out


def web_link(url: str | None) -> str | None:
    """``url`` when it is an http(s) address, else None: a front matter's ``javascript:`` or
    ``data:`` URL is shown as text, never as a link the editor could click."""
    if url and urlsplit(url.strip()).scheme.lower() in ("http", "https"):
        return url
    return None


def article_lines(settings: Settings, built: BuiltIssue) -> tuple[tuple[ArticleLine, ...], tuple[ArticleLine, ...]]:
    tz = settings.newsletter.tz
    issue = built.issue
    window = f"{issue.window_start.astimezone(tz):%-d %b %H:%M} – {issue.slot.astimezone(tz):%-d %b %H:%M}"
    cap = settings.selection.max_articles

    def when(a: Any) -> str:
        return f"{a.published.astimezone(tz):%a %-d %b %Y %H:%M}"

    chosen = tuple(
        ArticleLine(
            a.display_title,
            a.source,
            when(a),
            web_link(a.url),
            "pinned as the lead story by the editor"
            if a.id == issue.pinned
            else f"published inside this issue's window ({window}), not in an earlier issue; {i} of at most {cap}",
            a.id,
            a.id == issue.pinned,
        )
        for i, a in enumerate(issue.articles, start=1)
    )
    left = tuple(
        ArticleLine(
            s.article.display_title,
            s.article.source,
            when(s.article),
            web_link(s.article.url),
            s.reason,
            s.article.id,
            s.reason == LEFT_OUT,
        )
        for s in issue.skipped
    )
    return chosen, left


# --- the state behind the page ---------------------------------------------------------------------
