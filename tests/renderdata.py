"""Fixed issues and settings for the rendering tests: no store, no sources, no clock."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from digest.config import Settings, settings_from_dict
from digest.models import Article, Block, Issue, IssueEntry, Teaser
from digest.teaser import make_teaser

SLOT = datetime(2025, 8, 11, 7, 0, tzinfo=timezone.utc)

BASE: dict[str, Any] = {
    "newsletter": {
        "title": "The Test Weekly",
        "sender": "The Test Weekly <digest@news.example.org>",
        "reply_to": "editors@news.example.org",
        "site_url": "https://news.example.org",
        "timezone": "Europe/London",
        "language": "en",
        "description": "the weekly digest of The Test Review",
        "postal_address": "The Test Review, 1 Test Street, Testville TE1 1ST, United Kingdom",
    },
}


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def make_settings(tmp_path: Path, extra: dict[str, Any] | None = None) -> Settings:
    data = copy.deepcopy(BASE)
    _merge(data, extra or {})
    return settings_from_dict(data, tmp_path / "digest.toml")


def make_article(n: int, **fields: Any) -> Article:
    values: dict[str, Any] = {
        "id": f"test:{n}",
        "source": "test",
        "title": f"Article {n}: a headline about the week's events",
        "published": SLOT - timedelta(days=1 + n % 6, hours=n),
        "body": (
            Block(
                f"The lead paragraph of article {n} tells the reader what happened and why it matters. It has a second sentence."
            ),
        ),
        "url": f"https://news.example.org/articles/{n}",
        "author": f"Writer {n}",
    }
    values.update(fields)
    return Article(**values)


def make_issue(articles: list[Article], *, key: str = "2025-W33", teaser_chars: int = 220) -> Issue:
    entries = tuple(IssueEntry(a, make_teaser(a, teaser_chars)) for a in articles)
    return Issue(key=key, slot=SLOT, window_start=SLOT - timedelta(days=7), entries=entries)


def entry_with_teaser(article: Article, text: str, html: str) -> IssueEntry:
    return IssueEntry(article, Teaser(text=text, html=html))


def golden_issue() -> Issue:
    """A fixed issue touching every part of the theme: sections, an image, an article without a
    URL, an author-less article, non-ASCII text and characters that need escaping."""
    articles = [
        make_article(
            1,
            title="The harbour festival returns, bigger & louder",
            summary="After two quiet years the harbour festival is back with three stages, a night market and a brass band on a barge.",
            section="Events",
            image="https://news.example.org/img/harbour.jpg",
            image_alt="Boats decked with lanterns in the harbour at dusk",
        ),
        make_article(2, title="Café Ærø opens on the quay", section="Food", author="Zoë Ångström"),
        make_article(3, title="A letter from the archive", url=None, author=None),
        make_article(
            4,
            title='Review: "The Long Bridge" <a film in four parts>',
            section="Events",
            image="https://news.example.org/img/bridge.jpg",
        ),
    ]
    return make_issue(articles)
