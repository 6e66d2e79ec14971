"""Choosing the lead: the run of sentences that best stands for the whole article.

From the first sentences of the story, the run that fits the budget is chosen: each sentence is
weighed by how much it shares with the rest of the article and with the headline, with a bias
towards the top (news is written lead first). A sentence that only repeats the headline is never used.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from digest.teaser.boilerplate import furniture, repeats_headline
from digest.teaser.cutting import closed_within, join_sentences
from digest.teaser.language import ALL_FUNCTION_WORDS, split_sentences
from digest.text import UNSPACED, WORD, cut_at_word

# How many sentences of the lead are considered; news puts what matters first, and a teaser drawn
# from deeper in the piece reads as a quotation rather than an introduction.
LEAD_SENTENCES = 5


def content_terms(text: str) -> list[str]:
    """Content terms: words without the function words, cut to a crude stem; character pairs for
    Chinese and Japanese."""
    out: list[str] = []
    for w in WORD.findall(text.casefold()):
        if UNSPACED.search(w):
            run = "".join(ch for ch in w if UNSPACED.match(ch))
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
            continue
        if len(w) < 3 or w in ALL_FUNCTION_WORDS:
            continue
        out.append(w[:6])
    return out


@dataclass
class _Sentence:
    text: str
    position: int
    terms: Counter[str] = field(default_factory=Counter)
    usable: bool = True


def _dot(a: Mapping[str, float], b: Mapping[str, float], weight: dict[str, float]) -> float:
    return sum(n * b[t] * weight.get(t, 1.0) ** 2 for t, n in a.items() if t in b)


def _norm_of(a: Mapping[str, float], weight: dict[str, float]) -> float:
    return math.sqrt(sum((n * weight.get(t, 1.0)) ** 2 for t, n in a.items()))


def _cosine(a: Mapping[str, float], b: Mapping[str, float], weight: dict[str, float]) -> float:
    """Cosine likeness of two bags of terms, each term weighted."""
    na, nb = _norm_of(a, weight), _norm_of(b, weight)
    return _dot(a, b, weight) / (na * nb) if na and nb else 0.0


@dataclass(frozen=True)
class Weights:
    """How the lead's candidates are weighed. The defaults were chosen by ten-fold cross-validation
    over a small grid of round values on the teaser corpus (``bench/teasers.py --tune`` repeats
    it and prints each half's score); none of them names a site, a language or an article."""

    title: float = 0.5  # the headline's terms (cosine and share covered), beside the article's
    paragraphs: float = 1.0  # mean likeness to each paragraph: what the piece keeps returning to
    first: float = 1.0  # extra weight of the first sentence: news is written lead first
    cut: float = 1.2  # a long first sentence cut short still carries the story's first facts
    dependent: float = 0.7  # "But it…", "He said…": a sentence that leans on the one before
    colon: float = 0.5  # "…writes:" introduces a quotation the teaser would not show


WEIGHTS = Weights()

# Words that make a sentence lean on the one before it, when it starts with them.
_DEPENDENT = frozenset(
    "but and it this that these those he she they his her its so yet however also then there here still "
    "meanwhile instead aber und er sie es das dies diese dieser doch auch dann damit dabei deshalb denn "
    "mais et il elle ils elles ce cette ces cela ainsi pero y él ella ellos esto esta eso ma e lui lei "
    "questo questa però ale a to tento tato on ona také".split()
)


def _lead_sentences(paragraphs: list[str], title: str, language: str) -> list[_Sentence]:
    out: list[_Sentence] = []
    for p in paragraphs:
        for s in split_sentences(p, language):
            if len(out) >= LEAD_SENTENCES:
                return out
            usable = not repeats_headline(s, title) and furniture(s) not in _NOT_LEAD_SENTENCE
            if not out and not usable:
                continue
            out.append(_Sentence(s, len(out), Counter(content_terms(s)), usable))
    return out


_NOT_LEAD_SENTENCE = {
    "byline",
    "caption or credit",
    "share or subscribe prompt",
    "advertisement",
    "date stamp",
    "editor's note",
}


def _candidates(sentences: list[_Sentence], max_chars: int) -> list[tuple[str, list[int], bool]]:
    """Every run of whole usable sentences that fits, and each sentence too long to fit cut short:
    (text, sentence indexes, cut)."""
    out: list[tuple[str, list[int], bool]] = []
    for i, first in enumerate(sentences):
        if not first.usable:
            continue
        text = ""
        for j in range(i, len(sentences)):
            if not sentences[j].usable:
                break
            text = join_sentences(text, sentences[j].text)
            closed = closed_within(text, max_chars)
            if not closed:
                if j == i:
                    cut = cut_at_word(first.text, max_chars)
                    if cut:
                        out.append((cut, [i], True))
                break
            out.append((closed, list(range(i, j + 1)), False))
    return out


@dataclass(frozen=True)
class Candidate:
    """A possible teaser from the lead, with what the choice weighs: its likeness to the rest of
    the article (``body``), to the headline (``title``) and to the paragraphs on average."""

    text: str
    sentences: int
    first: bool
    cut: bool
    body: float
    title: float
    paragraphs: float

    def score(self, w: Weights = WEIGHTS) -> float:
        score = (self.body + w.title * self.title + w.paragraphs * self.paragraphs) / self.sentences
        if self.first:
            score *= 1 + w.first
        if self.cut:
            score *= w.cut
        if _first_word(self.text) in _DEPENDENT:
            score *= w.dependent
        if self.text.endswith(":"):
            score *= w.colon
        return score


def lead_candidates(paragraphs: list[str], title: str, language: str, max_chars: int) -> list[Candidate]:
    """Every teaser the lead allows within ``max_chars``, measured."""
    sentences = _lead_sentences(paragraphs, title, language)
    if not sentences:
        return []
    body = Counter(content_terms(" ".join(paragraphs)))
    head = Counter(content_terms(title))
    each = [Counter(content_terms(p)) for p in paragraphs]
    # A term found in every paragraph tells the sentences apart less than one found in a few.
    df = Counter(t for p in each for t in p)
    weight = {t: math.log(1 + len(each) / (1 + df[t])) + 0.5 for t in body | head}
    head_mass = sum(weight[t] for t in head) or 1.0
    # The mean cosine with each paragraph is a dot product with the sum of the paragraphs' unit
    # vectors, so that sum is made once.
    centroid: dict[str, float] = {}
    for p in each:
        norm = _norm_of(p, weight)
        for t, n in p.items():
            centroid[t] = centroid.get(t, 0.0) + (n / norm if norm else 0.0)
    out = []
    for text, idx, cut in _candidates(sentences, max_chars):
        terms = Counter(content_terms(text))
        own = sum((sentences[k].terms for k in idx), Counter())
        out.append(
            Candidate(
                text=text,
                sentences=len(idx),
                first=idx[0] == 0,
                cut=cut,
                body=_cosine(terms, body - own, weight),
                title=_cosine(terms, head, weight) + sum(weight[t] for t in head if t in terms) / head_mass,
                paragraphs=_dot(terms, centroid, weight) / ((_norm_of(terms, weight) or 1.0) * len(each)),
            )
        )
    return out


def choose_lead(paragraphs: list[str], title: str, language: str, max_chars: int, weights: Weights = WEIGHTS) -> str:
    """The run of lead sentences that best stands for the article within ``max_chars``."""
    best, best_score = "", -1.0
    for c in lead_candidates(paragraphs, title, language, max_chars):
        score = c.score(weights)
        if score > best_score + 1e-12:
            best, best_score = c.text, score
    return best


def _first_word(text: str) -> str:
    parts = text.split(maxsplit=1)
    return parts[0].strip("“\"„«‘'").casefold() if parts else ""
