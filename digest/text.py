"""Text rules that more than one stage follows: plain text from markup, what a word is, where a text
may be cut, and whether a summary is only the body's opening words.

The teaser and the renderer both shorten text to a budget; they share :func:`cut_at_word` so that a
title, a subject and a teaser are cut by the same rule. The sources (which drop a feed's automatic
excerpt) and the teaser (which passes over such a description) share :func:`is_body_opening`.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable

ELLIPSIS = "…"

_WHITESPACE = re.compile(r"\s+")
# A tag starts with a letter, "/" or "!": text such as "I <3 feeds" or "a < b > c" is not markup.
_TAG = re.compile(r"</?[A-Za-z!][^<>]*>")
# C0/C1 control characters other than whitespace: illegal in XML 1.0, yet real feeds carry them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_text(value: str | None) -> str:
    """Text from markup: decode entities, drop tags, then :func:`normalise_space`."""
    if not value:
        return ""
    text = html.unescape(_TAG.sub(" ", value)) if ("<" in value or "&" in value) else value
    return normalise_space(text)


def normalise_space(value: str | None) -> str:
    """Plain text tidied: NFC, soft hyphens and control characters gone, whitespace (non-breaking
    too) folded to one space."""
    if not value:
        return ""
    text = unicodedata.normalize("NFC", value).replace("\u00ad", "")
    return _WHITESPACE.sub(" ", _CONTROL.sub("", text)).strip()


# Scripts written without spaces between words, with their punctuation and full-width forms.
UNSPACED = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def words(text: str) -> list[str]:
    return WORD.findall(text)


def folded(text: str) -> str:
    """The text's words casefolded and joined by one space: the form in which texts are compared."""
    return " ".join(w.casefold() for w in WORD.findall(text))


def fits(text: str, max_chars: int) -> bool:
    """Within the budget: counted in characters (not bytes), whatever the script."""
    return len(text) <= max_chars


_OPENERS = {
    "(": ")",
    "[": "]",
    "{": "}",
    "“": "”",
    "‘": "’",
    "«": "»",
    "‹": "›",
    "„": "“",
    "‚": "‘",
    "「": "」",
    "『": "』",
    "（": "）",
    "【": "】",
    "《": "》",
    "〈": "〉",
    "〔": "〕",
}
_CLOSERS = set(_OPENERS.values())


def unclosed(text: str) -> str:
    """The closing marks a text still owes, innermost first: ``'He said “we (all'`` owes ``')”'``."""
    stack: list[str] = []
    for i, ch in enumerate(text):
        if stack and ch == stack[-1]:
            if ch == "’" and _letters_around(text, i):
                continue  # an apostrophe (don’t), not a closing quote
            stack.pop()
        elif ch == '"':
            stack.append('"')
        elif ch == "»" and "»" not in stack:
            stack.append("«")  # German and Danish quote »like this«
        elif ch in _OPENERS:
            if ch == "‘" and _letters_around(text, i):
                continue
            stack.append(_OPENERS[ch])
        elif ch in _CLOSERS and ch in stack:
            # a mark closed out of order: close everything opened inside it as well
            while stack and stack.pop() != ch:
                pass
    return "".join(reversed(stack))


def _letters_around(text: str, i: int) -> bool:
    return 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()


def _cut_points(text: str, limit: int) -> int:
    """The longest prefix length ≤ ``limit`` that ends between two words (0 when none)."""
    if limit >= len(text):
        return len(text)
    for p in range(limit, 0, -1):
        before, after = text[p - 1], text[p]
        if after.isspace() or before.isspace():
            return p
        if UNSPACED.match(before) or UNSPACED.match(after):
            return p  # Chinese and Japanese: any two characters are a boundary
    return 0


# Where a clause ends inside a sentence: a cut there reads better than one mid-clause.
_PAUSES = (", ", "; ", " — ", " – ", ": ", "、", "，")
CLAUSE_CUT = 0.75
_DANGLING = " \t,;:/|·•-–—([{“‘„‚«‹\"'「『（【《〈、，"


def cut_at_word(text: str, max_chars: int, *, break_long_words: bool = False) -> str:
    """At most ``max_chars`` characters, cut between words, ending with "…" and closing any quote or
    parenthesis left open. Empty when not even one whole word fits, unless ``break_long_words``:
    then, where cutting between words would keep less than half the room, the word is cut instead
    (a line such as a title or a subject must say something even when it is one long URL)."""
    text = text.strip()
    if fits(text, max_chars):
        return text
    room = max_chars - len(ELLIPSIS)
    while room > 0:
        end = _cut_points(text, room)
        if break_long_words and len(text[:end].rstrip()) <= room // 2:
            end = room
        head = text[:end]
        pause = max(head.rfind(mark) for mark in _PAUSES)
        if pause >= CLAUSE_CUT * room:
            head = head[:pause]  # end at a natural pause rather than mid-clause
        head = head.rstrip(_DANGLING)
        if not head:
            return ""
        owed = unclosed(head)
        out = head + ELLIPSIS + owed
        if fits(out, max_chars):
            return out
        room = len(head) - (len(out) - max_chars)
    return ""


# The tail of an automatic excerpt: "[…]", "…", "Read more", "Continue reading →".
READ_MORE = re.compile(
    r"(?:\s*(?:\[\s*(?:…|\.\.\.)\s*\]|\(\s*(?:…|\.\.\.)\s*\)|…|\.\.\.)|\s*(?:read more|continue reading|weiterlesen|mehr lesen|lire la suite|leer más|leggi tutto)\W*)+\s*$",
    re.I,
)
# Where in the body an excerpt may start: a dateline, a byline or a caption may come before it.
_OPENING_PARAGRAPHS = 4
_OPENING_WORDS = 60


def is_body_opening(summary: str, paragraphs: Iterable[str]) -> bool:
    """True when a summary only repeats the body's first words (an automatic excerpt, as most feeds'
    descriptions are), allowing for a dateline or byline before them, a trailing "…", "Read more" or
    "more" link, a last word cut short, and one word in ten that differs."""
    said = _excerpt_words(READ_MORE.sub("", summary))
    if said[-1:] == ["more"]:
        said.pop()  # a bare "more" link after the excerpt ("(more)", "more »")
    if not said:
        return True
    body: list[str] = []
    starts = 0  # how many of the body's first words an excerpt may start at
    for n, paragraph in enumerate(paragraphs):
        body += _excerpt_words(paragraph)
        if n < _OPENING_PARAGRAPHS:
            starts = min(_OPENING_WORDS, len(body))
        if len(body) >= starts + len(said) and n + 1 >= _OPENING_PARAGRAPHS:
            break
    # The first words must match exactly, except a last word the excerpt may have cut short.
    probe = said[: min(4, max(1, len(said) - 1))]
    for start in range(starts):
        if body[start : start + len(probe)] != probe:
            continue
        window = body[start : start + len(said)]
        same = sum(a == b for a, b in zip(said[:-1], window))
        last = window[len(said) - 1] if len(window) == len(said) else ""
        same += last.startswith(said[-1])
        if same >= 0.9 * len(said):
            return True
    return False


def _excerpt_words(text: str) -> list[str]:
    # A feed's excerpt and the page it came from often spell the apostrophe differently.
    return folded(text.replace("’", "'")).split()


_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufeff]")


def one_line(value: str | None, limit: int | None = None) -> str:
    """Text fit for one line of an e-mail (a title, a byline, a header): control characters gone,
    every run of whitespace (CR and LF included) one space, and at most ``limit`` characters, cut
    between words the way a teaser is (:func:`cut_at_word`)."""
    if not value:
        return ""
    value = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in _INVISIBLE.sub("", str(value)))
    value = " ".join(value.split())
    return value if limit is None else cut_at_word(value, limit, break_long_words=True)


def plural(count: int, word: str, words: str | None = None) -> str:
    """``count`` and the word in the right number: "1 article", "2 articles", "0 articles"."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


#: A title made from an article's lead when it has none, at most this long.
DERIVED_TITLE_CHARS = 90


def title_from_lead(first_paragraph: str) -> str:
    """A title for an article that has none (wire copy, micro-blog posts): the first sentence of
    its lead, cut between words to DERIVED_TITLE_CHARS with an ellipsis."""
    sentence = re.split(r"(?<=[.!?])\s", normalise_space(first_paragraph), maxsplit=1)[0]
    if len(sentence) <= DERIVED_TITLE_CHARS:
        return sentence
    cut = sentence[: DERIVED_TITLE_CHARS - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + ELLIPSIS
