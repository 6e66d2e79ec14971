"""The editor's own words: a front-matter summary, a dek, or a description that says something of
its own rather than repeating the body's opening words (most feeds' descriptions do just that)."""

from __future__ import annotations

from digest.models import Article
from digest.teaser.boilerplate import repeats_headline
from digest.teaser.lead import content_terms
from digest.text import READ_MORE, UNSPACED, clean_text, is_body_opening


def editors_choice(article: Article) -> tuple[str, str] | None:
    """(where it came from, text) of a teaser an editor wrote, or None."""
    summary = clean_text(article.summary)
    if summary and article.summary_by_editor:
        return "front matter summary", summary
    dek = clean_text(article.dek)
    if dek and not repeats_headline(dek, article.title):
        return "dek", dek
    if (
        summary
        and not repeats_headline(summary, article.title)
        and not is_body_opening(summary, article.paragraphs)
        and _about(summary, article)
    ):
        return "description", READ_MORE.sub("", summary).strip()
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
