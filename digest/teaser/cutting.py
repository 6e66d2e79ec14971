"""Fitting sentences to the budget: whole sentences when they fit, else one cut between words.

The teaser ends at a sentence boundary; when even one sentence is too long it is cut between words
(:func:`digest.text.cut_at_word`) and ends with "…", and any quote or parenthesis it opened is closed.
Text written without spaces (Chinese, Japanese) is budgeted and cut by characters.
"""

from __future__ import annotations

from digest.text import UNSPACED, cut_at_word, fits, unclosed


def fit_sentences(sentences: list[str], max_chars: int) -> str:
    """The first sentences that fit whole; else the first one cut between words."""
    out = ""
    for s in sentences:
        candidate = join_sentences(out, s)
        if not fits(candidate, max_chars):
            break
        out = candidate
    if out:
        return closed_within(out, max_chars) or cut_at_word(out, max_chars)
    return cut_at_word(sentences[0], max_chars) if sentences else ""


def join_sentences(a: str, b: str) -> str:
    if not a:
        return b
    if UNSPACED.match(a[-1]) and b and UNSPACED.match(b[0]):
        return a + b
    return f"{a} {b}"


def closed_within(text: str, max_chars: int) -> str:
    """``text`` with any quote or parenthesis it left open closed, or "" when that no longer fits."""
    owed = unclosed(text)
    out = text + owed
    return out if fits(out, max_chars) else ""
