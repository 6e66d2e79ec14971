"""Lead-paragraph teasers.

The editor's own words win: an article's ``summary`` (front matter ``summary`` or ``teaser``).
Otherwise the teaser is drawn from the lead — the first body paragraph — as whole sentences that fit
``max_chars``. When even the first sentence is too long, it is cut at a word boundary and ends
with "…".
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

import pysbd

from digest.models import Article, Teaser

ELLIPSIS = "…"


@lru_cache(maxsize=16)
def _segmenter(language: str) -> pysbd.Segmenter:
    try:
        return pysbd.Segmenter(language=language, clean=False)
    except ValueError:
        return pysbd.Segmenter(language="en", clean=False)


def split_sentences(text: str, language: str | None = None) -> list[str]:
    lang = (language or "en").split("-")[0].lower()
    return [s.strip() for s in _segmenter(lang).segment(text) if s.strip()]


def cut_at_word(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters including the trailing ellipsis, cut between words."""
    if len(text) <= max_chars:
        return text
    room = max_chars - len(ELLIPSIS)
    head = text[: room + 1]
    cut = head.rfind(" ")
    head = head[:cut] if cut > 0 else text[:room]
    return head.rstrip(" ,;:-–—(\"“‘'") + ELLIPSIS


def lead_teaser(article: Article, max_chars: int) -> str:
    """Plain-text teaser for an article."""
    if article.summary:
        return cut_at_word(article.summary, max_chars)
    lead = next((b.text for b in article.body if b.kind == "p" and b.text != article.title), "")
    if not lead:
        return cut_at_word(article.dek or "", max_chars)
    sentences = split_sentences(lead, article.language)
    out = ""
    for s in sentences:
        candidate = f"{out} {s}".strip()
        if len(candidate) > max_chars:
            break
        out = candidate
    return out or cut_at_word(sentences[0] if sentences else lead, max_chars)


def make_teaser(article: Article, max_chars: int) -> Teaser:
    text = re.sub(r"\s+", " ", lead_teaser(article, max_chars)).strip()
    return Teaser(text=text, html=html.escape(text, quote=True))
