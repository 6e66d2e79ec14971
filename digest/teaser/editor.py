"""The editor's own words: a front-matter summary, a dek, or a description that says something of
its own rather than repeating the body's opening words (most feeds' descriptions do just that)."""

from __future__ import annotations

import re
from pathlib import Path

from digest.models import Article
from digest.sources.text import clean_text
from digest.teaser.boilerplate import repeats_headline
from digest.teaser.lead import content_terms
from digest.text import UNSPACED, folded

_I = re.I
_READ_MORE = re.compile(
    r"(?:\s*(?:\[\s*(?:…|\.\.\.)\s*\]|\(\s*(?:…|\.\.\.)\s*\)|…|\.\.\.)|\s*(?:read more|continue reading|weiterlesen|mehr lesen|lire la suite|leer más|leggi tutto)\W*)+\s*$",
    _I,
)
_EDITOR_FILES = {".md", ".markdown", ".txt"}


def is_body_opening(summary: str, article: Article) -> bool:
    """True when a description only repeats the body's first words (as most feeds' do), allowing
    for a dateline or byline before them, a trailing "…" or "Read more", and a last word cut short."""
    said = folded(_READ_MORE.sub("", summary)).split()
    if not said:
        return True
    body = folded(" ".join(article.paragraphs[:4])).split()
    probe = said[:4]
    for start in range(min(60, len(body))):
        if body[start : start + len(probe)] != probe:
            continue
        window = body[start : start + len(said)]
        same = sum(a == b for a, b in zip(said[:-1], window))
        last = window[len(said) - 1] if len(window) == len(said) else ""
        same += last.startswith(said[-1])
        if same >= 0.9 * len(said):
            return True
    return False


def editors_choice(article: Article) -> tuple[str, str] | None:
    """(where it came from, text) of a teaser an editor wrote, or None."""
    origin = Path(article.origin).suffix.lower() if article.origin else ""
    summary = clean_text(article.summary)
    if summary and origin in _EDITOR_FILES:
        return "front matter summary", summary
    dek = clean_text(article.dek)
    if dek and not repeats_headline(dek, article.title):
        return "dek", dek
    if (
        summary
        and not repeats_headline(summary, article.title)
        and not is_body_opening(summary, article)
        and _about(summary, article)
    ):
        return "description", _READ_MORE.sub("", summary).strip()
    return None


def _about(description: str, article: Article) -> bool:
    """Whether a description speaks of this article at all, rather than being the site's own blurb
    ("The latest news and headlines from…") repeated on every page."""
    said = _roots(description)
    shared = said & _roots(" ".join([article.title, *article.paragraphs]))
    return bool(shared) and len(shared) >= 0.15 * len(said)


def _roots(text: str) -> set[str]:
    """Content words cut to their first four letters: "voted" and "vote" meet, as do "books" and
    "book"; Chinese and Japanese text gives its character pairs."""
    return {t[:4] for t in content_terms(text) if len(t) >= 4 or UNSPACED.search(t)}
