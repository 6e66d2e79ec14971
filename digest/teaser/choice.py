"""The teaser: the editor's words when there are some, else the lead."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from digest.models import Article, Teaser
from digest.teaser.boilerplate import Passed, lead_paragraphs
from digest.teaser.cutting import fit_sentences
from digest.teaser.editor import editors_choice
from digest.teaser.language import article_language, split_sentences
from digest.teaser.lead import choose_lead

DEFAULT_MAX_CHARS = 220


@dataclass(frozen=True)
class TeaserChoice:
    """A teaser and how it came about: ``origin`` is "front matter summary", "dek",
    "description", "lead" or "none"; ``passed`` lists the paragraphs passed over."""

    text: str
    origin: str
    language: str
    passed: tuple[Passed, ...] = ()


def choose_teaser(article: Article, max_chars: int = DEFAULT_MAX_CHARS) -> TeaserChoice:
    language = article_language(article)
    chosen = editors_choice(article)
    if chosen:
        origin, text = chosen
        return TeaserChoice(_tidy(fit_sentences(split_sentences(text, language), max_chars)), origin, language)
    paragraphs, passed = lead_paragraphs(article, language)
    text = _tidy(choose_lead(paragraphs, article.title, language, max_chars))
    return TeaserChoice(text, "lead" if text else "none", language, tuple(passed))


_TAGLIKE = re.compile(r"<[A-Za-z/!?][^<>]*>")


def _tidy(text: str) -> str:
    """One line of plain text: entities decoded, anything tag-like dropped, spaces folded."""
    text = _TAGLIKE.sub(" ", html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


def as_teaser(text: str) -> Teaser:
    """A plain-text teaser in its two forms: the text, and the same text HTML-escaped."""
    return Teaser(text=text, html=html.escape(text, quote=True))


def make_teaser(article: Article, max_chars: int = DEFAULT_MAX_CHARS) -> Teaser:
    """The teaser for an article in its two forms: plain text, and the same text HTML-escaped."""
    return as_teaser(choose_teaser(article, max_chars).text)
