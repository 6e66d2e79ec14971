"""Teaser quality against summaries people wrote, beside the peers' methods at the same budget.

Usage: python bench/teasers.py [SET_DIR] [--max-chars N] [--half all|even|odd] [--show N]

SET_DIR holds pairs.jsonl ({id, source, path, title, human_summary} per line) and the article
files its ``path`` values point to (default: ../shared/corpus/teasers). Each article is read the
way ``digest teaser`` reads it, every method writes a teaser within the same budget, and each
teaser is scored against the human summary: ROUGE-1/2/L F1 ×100 (``rouge-score``, stemmed).
Beside the scores: how many teasers ran over the budget, ended in the middle of a word, kept
boilerplate (a byline, dateline, credit, "Updated" stamp, share prompt, advertisement, editor's
note) or repeated the headline, and how many leaked a tag or an entity.

``--half even`` / ``--half odd`` score every other pair only (by line number), so a change tuned
on one half can be checked on the other.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
from datetime import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rouge_score import rouge_scorer  # noqa: E402

from digest.models import Article  # noqa: E402
from digest.sources.folder import read_article_file  # noqa: E402
from digest.sources.markup import markdown_blocks, split_front_matter  # noqa: E402
from digest.teaser import ELLIPSIS, cut_at_word, fit_sentences, fits, make_teaser, split_sentences  # noqa: E402

_SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
DEFAULT_SET = ROOT.parent / "shared" / "corpus" / "teasers"

# What a reader would notice as furniture at the start of a teaser. Kept apart from the teaser's
# own rules on purpose, so the count is not just the teaser agreeing with itself.
_FURNITURE = [
    re.compile(p, re.I)
    for p in (
        r"^\s*(by|von|par|por|door)\s+[A-ZÀ-Ý]",
        r"^[A-ZÀ-Ý][A-ZÀ-Ý .,'-]{2,}\s*(\([^)]{2,40}\))?\s*(—|–|--|-)\s",  # LONDON (Reuters) —
        r"\((reuters|ap|afp|dpa|apa|sda|ansa|efe)\)",
        r"\b(photo|foto|bild|image|credit|courtesy)\s*(by|:|/)?\s*[A-Z]",
        r"getty images|/ afp\b|\bap photo\b|shutterstock|keystone",
        r"^\s*(updated|last updated|aktualisiert|mis à jour|actualizado)\b",
        r"\b(share (this|on)|subscribe|sign up|newsletter|follow us|click here|read more|continue reading)\b",
        r"\b(advertisement|anzeige|werbung|publicité|publicidad)\b",
        r"^\s*(editor'?s note|note from the editor|anm\. d\. red)",
    )
]
_TAG_OR_ENTITY = re.compile(r"<[A-Za-z/!][^>]*>|&(#\d+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]{1,31});")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_WORD_END = re.compile(r"(\w+)\W*$")


def plain_text(article: Article) -> str:
    """The article as one plain string, as a CMS strips a post to make an excerpt."""
    return " ".join(b.text for b in article.body)


# --- the peers' methods -------------------------------------------------------------------------


def first_chars(n: int) -> Callable[[Article, int], str]:
    def method(article: Article, max_chars: int) -> str:
        text = plain_text(article)
        return text if len(text) <= n else text[:n].rstrip() + ELLIPSIS

    return method


def first_words(n: int) -> Callable[[Article, int], str]:
    def method(article: Article, max_chars: int) -> str:
        words = plain_text(article).split()
        return " ".join(words) if len(words) <= n else " ".join(words[:n]) + ELLIPSIS

    return method


def _sentences(article: Article) -> list[str]:
    first = next((b.text for b in article.body if b.kind == "p"), "")
    return split_sentences(first, article.language) if first else []


def first_sentence(article: Article, max_chars: int) -> str:
    s = _sentences(article)
    return s[0] if s else ""


def sentences_that_fit(article: Article, max_chars: int) -> str:
    return fit_sentences(split_sentences(plain_text(article)[: max_chars * 4], article.language), max_chars)


def best_lead_span(article: Article, max_chars: int, reference: str) -> str:
    """The ceiling: of the runs of the first five sentences that fit, the one that scores best
    against the human summary (chosen knowing the answer)."""
    sentences = split_sentences(plain_text(article)[: max_chars * 8], article.language)[:5]
    spans = [" ".join(sentences[i : j + 1]) for i in range(len(sentences)) for j in range(i, len(sentences))]
    spans = [s for s in spans if fits(s, max_chars)] or [cut_at_word(sentences[0], max_chars)] if sentences else [""]
    return max(spans, key=lambda s: _SCORER.score(reference, s)["rougeL"].fmeasure)


def ours(article: Article, max_chars: int) -> str:
    return make_teaser(article, max_chars).text


@dataclass
class Method:
    name: str
    write: Callable[..., str]
    ceiling: bool = False  # chosen knowing the answer: a bound, not a peer


METHODS = [
    Method("digest (ours)", ours),
    Method('first 130 characters + "…" (Ghost)', first_chars(130)),
    Method('first 200 characters + "…"', first_chars(200)),
    Method('first 50 words + "…" (Pelican)', first_words(50)),
    Method("first sentence", first_sentence),
    Method("first sentences that fit", sentences_that_fit),
    Method("ceiling: best span of first 5 sentences", best_lead_span, ceiling=True),
]


# --- checks -------------------------------------------------------------------------------------


def mid_word(teaser: str, article: Article) -> bool:
    """True when a teaser cut with "…" ends in a piece of a word: its last word before the
    ellipsis is not a whole word anywhere in the article."""
    if not teaser.endswith(ELLIPSIS):
        return False
    head = teaser[: -len(ELLIPSIS)]
    if _CJK.search(head[-1:] or ""):
        return False
    m = _WORD_END.search(head)
    if not m or not head.rstrip()[-1:].isalnum():
        return False
    word = m.group(1)
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", plain_text(article)) is None


def boilerplate(teaser: str, article: Article) -> bool:
    """Furniture kept, or the teaser opening with the headline itself."""
    if any(p.search(teaser) for p in _FURNITURE):
        return True
    title = _norm(article.title)
    return bool(title) and _norm(teaser).startswith(title)


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.casefold()).strip()


@dataclass
class Tally:
    r1: list[float] = field(default_factory=list)
    r2: list[float] = field(default_factory=list)
    rl: list[float] = field(default_factory=list)
    over: int = 0
    mid_word: int = 0
    boilerplate: int = 0
    leaks: int = 0
    empty: int = 0


def load_pairs(set_dir: Path, half: str) -> list[tuple[dict, Article]]:
    tz = ZoneInfo("UTC")
    pairs = []
    for n, line in enumerate((set_dir / "pairs.jsonl").read_text(encoding="utf-8").splitlines()):
        if not line.strip() or (half == "even" and n % 2) or (half == "odd" and not n % 2):
            continue
        row = json.loads(line)
        path = set_dir / row["path"]
        try:
            article = read_article_file(path, source=row["source"], tz=tz, require_date=False)
        except ValueError:
            # A page without a headline (digest would not take it in) still has a body to tease.
            _, body = split_front_matter(path.read_text(encoding="utf-8"))
            article = Article(id=row["id"], source=row["source"], title=row["title"], published=datetime.now(tz), body=markdown_blocks(body))
        pairs.append((row, article))
    return pairs


def score(pairs: Sequence[tuple[dict, Article]], max_chars: int, methods: Sequence[Method] = METHODS) -> dict[str, Tally]:
    scorer = _SCORER
    tallies = {m.name: Tally() for m in methods}
    for row, article in pairs:
        for m in methods:
            t = tallies[m.name]
            text = m.write(article, max_chars, row["human_summary"]) if m.ceiling else m.write(article, max_chars)
            if m.write is ours:
                teaser = make_teaser(article, max_chars)
                t.leaks += bool(_TAG_OR_ENTITY.search(teaser.text)) or html.unescape(teaser.html) != teaser.text
            s = scorer.score(row["human_summary"], text)
            t.r1.append(s["rouge1"].fmeasure * 100)
            t.r2.append(s["rouge2"].fmeasure * 100)
            t.rl.append(s["rougeL"].fmeasure * 100)
            t.over += not fits(text, max_chars)
            t.mid_word += mid_word(text, article)
            t.boilerplate += boilerplate(text, article)
            t.empty += not text.strip()
    return tallies


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def print_table(tallies: dict[str, Tally], n: int, max_chars: int, label: str) -> None:
    print(f"\n{label}: {n} articles, budget {max_chars} characters")
    print(f"| {'method':<36} | {'R1':>5} | {'R2':>5} | {'RL':>5} | over | mid-word | boilerplate | empty |")
    print(f"|{'-' * 38}|{'-' * 7}|{'-' * 7}|{'-' * 7}|------|----------|-------------|-------|")
    for name, t in tallies.items():
        print(
            f"| {name:<36} | {mean(t.r1):5.1f} | {mean(t.r2):5.1f} | {mean(t.rl):5.1f} | {t.over:4d} | {t.mid_word:8d} |"
            f" {t.boilerplate:11d} | {t.empty:5d} |"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set_dir", nargs="?", type=Path, default=DEFAULT_SET)
    ap.add_argument("--max-chars", type=int, default=200)
    ap.add_argument("--half", choices=["all", "even", "odd", "both"], default="both")
    ap.add_argument("--show", type=int, default=0, help="print our teaser beside the human one for N articles")
    args = ap.parse_args(argv)
    if not (args.set_dir / "pairs.jsonl").is_file():
        print(f"bench/teasers.py: {args.set_dir}/pairs.jsonl not found; pass a pairs set folder", file=sys.stderr)
        return 2
    halves = ["all", "even", "odd"] if args.half == "both" else [args.half]
    everything = load_pairs(args.set_dir, "all")
    ours_rl: dict[str, float] = {}
    for half in halves:
        pairs = [p for i, p in enumerate(everything) if half == "all" or (i % 2 == 0) == (half == "even")]
        started = time.perf_counter()
        tallies = score(pairs, args.max_chars)
        took = time.perf_counter() - started
        print_table(tallies, len(pairs), args.max_chars, f"{half} pairs ({took:.1f}s)")
        t = tallies[METHODS[0].name]
        ceilings = {m.name for m in METHODS if m.ceiling}
        best_peer = max(mean(x.rl) for name, x in tallies.items() if name != METHODS[0].name and name not in ceilings)
        ours_rl[half] = mean(t.rl)
        print(f"ours RL {mean(t.rl):.1f} vs best peer {best_peer:.1f} ({mean(t.rl) - best_peer:+.1f}); tags or entities leaked: {t.leaks}")
    for row, article in everything[: args.show]:
        print(f"\n# {row['id']} | {article.title}\n  human: {row['human_summary']}\n  ours:  {ours(article, args.max_chars)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
