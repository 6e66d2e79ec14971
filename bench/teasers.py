"""Teaser quality against summaries people wrote, beside the peers' methods at the same budget.

Usage: python bench/teasers.py [SET_DIR] [--max-chars N] [--show N] [--tune]

SET_DIR holds pairs.jsonl ({id, source, path, title, human_summary} per line) and the article
files its ``path`` values point to (default: ../shared/corpus/teasers). Each article is read the
way ``digest teaser`` reads it, every method writes a teaser within the same budget, and each
teaser is scored against the human summary: ROUGE-1/2/L F1 ×100 (``rouge-score``, stemmed).
Beside the scores: how many teasers ran over the budget, ended in the middle of a word, kept
boilerplate (a byline, dateline, credit, "Updated" stamp, share prompt, advertisement, editor's
note) or repeated the headline, and how many leaked a tag or an entity.

The figures are printed for the whole set and for its even and odd lines apart, so a change tuned
on one half can be checked on the other.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rouge_score import rouge_scorer  # noqa: E402

from digest.models import Article  # noqa: E402
from digest.sources.folder import read_article_file  # noqa: E402
from digest.sources.markup import markdown_blocks, split_front_matter  # noqa: E402
from digest.teaser import fit_sentences, make_teaser, split_sentences  # noqa: E402
from digest.text import ELLIPSIS, cut_at_word, fits  # noqa: E402

_SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
DEFAULT_SET = ROOT.parent / "shared" / "corpus" / "teasers"

# What a reader would notice as furniture at the start of a teaser. Kept apart from the teaser's
# own rules on purpose, so the count is not just the teaser agreeing with itself.
_FURNITURE = [
    re.compile(p, re.I)
    for p in (
        r"^\s*(by|von|par|por|door)\s+[A-ZÀ-Ý]\w+\s+[A-ZÀ-Ý]\w+\s*$",  # a byline alone
        r"\((reuters|ap|afp|dpa|apa|sda|ansa|efe)\)",  # LONDON (Reuters) —
        r"\b(photo|foto|bild|image|credit)s?\s*(:|by\b|/|©)",
        r"getty images|\bap photo\b|shutterstock",
        r"^\s*(updated|last updated|aktualisiert|mis à jour|actualizado)\b",
        r"\b(share this|share on|subscribe to|sign up for|follow us|click here|read more|continue reading)\b",
        r"^\s*(advertisement|anzeige|werbung|publicité|publicidad)\b",
        r"^\s*(editor'?s note|note from the editor|anm\. d\. red)",
    )
]
_DATELINE = re.compile(r"^[A-ZÀ-Ý][A-ZÀ-Ý .,'’-]{2,}(\([^)]{2,40}\))?\s*(—|–|--)\s*")
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
    if any(p.search(teaser) for p in _FURNITURE) or _DATELINE.match(teaser):
        return True
    title = _norm(article.title)
    return bool(title) and _norm(teaser).startswith(title)


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.casefold()).strip()


@dataclass
class Row:
    """One method's teaser for one article, scored and checked."""

    r1: float
    r2: float
    rl: float
    over: bool
    mid_word: bool
    boilerplate: bool
    empty: bool
    leak: bool = False


def load_pairs(set_dir: Path) -> list[tuple[dict, Article]]:
    tz = ZoneInfo("UTC")
    pairs = []
    for line in (set_dir / "pairs.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        path = set_dir / row["path"]
        try:
            article = read_article_file(path, source=row["source"], tz=tz, require_date=False)
        except ValueError:
            # A page without a headline (digest would not take it in) still has a body to tease.
            _, body = split_front_matter(path.read_text(encoding="utf-8"))
            article = Article(
                id=row["id"],
                source=row["source"],
                title=row["title"],
                published=datetime.now(tz),
                body=markdown_blocks(body),
            )
        pairs.append((row, article))
    return pairs


def score(
    pairs: Sequence[tuple[dict, Article]], max_chars: int, methods: Sequence[Method] = METHODS
) -> dict[str, list[Row]]:
    """Each method's scored teaser for every pair, in the pairs' order."""
    rows: dict[str, list[Row]] = {m.name: [] for m in methods}
    for row, article in pairs:
        for m in methods:
            leak = False
            if m.write is ours:
                teaser = make_teaser(article, max_chars)
                text = teaser.text
                leak = bool(_TAG_OR_ENTITY.search(text)) or html.unescape(teaser.html) != text
            else:
                text = m.write(article, max_chars, row["human_summary"]) if m.ceiling else m.write(article, max_chars)
            s = _SCORER.score(row["human_summary"], text)
            rows[m.name].append(
                Row(
                    r1=s["rouge1"].fmeasure * 100,
                    r2=s["rouge2"].fmeasure * 100,
                    rl=s["rougeL"].fmeasure * 100,
                    over=not fits(text, max_chars),
                    mid_word=mid_word(text, article),
                    boilerplate=boilerplate(text, article),
                    empty=not text.strip(),
                    leak=leak,
                )
            )
    return rows


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def summarise(rows: dict[str, list[Row]], keep: Callable[[int], bool]) -> dict[str, dict[str, float]]:
    out = {}
    for name, rs in rows.items():
        part = [r for i, r in enumerate(rs) if keep(i)]
        out[name] = {
            "n": len(part),
            "R1": mean([r.r1 for r in part]),
            "R2": mean([r.r2 for r in part]),
            "RL": mean([r.rl for r in part]),
            "over": sum(r.over for r in part),
            "mid-word": sum(r.mid_word for r in part),
            "boilerplate": sum(r.boilerplate for r in part),
            "empty": sum(r.empty for r in part),
            "leaks": sum(r.leak for r in part),
        }
    return out


def print_table(table: dict[str, dict[str, float]], max_chars: int, label: str) -> None:
    n = next(iter(table.values()))["n"]
    print(f"\n{label}: {n} articles, budget {max_chars} characters")
    print(f"| {'method':<40} | {'R1':>5} | {'R2':>5} | {'RL':>5} | over | mid-word | boilerplate | empty |")
    print(f"|{'-' * 42}|{'-' * 7}|{'-' * 7}|{'-' * 7}|------|----------|-------------|-------|")
    for name, t in table.items():
        print(
            f"| {name:<40} | {t['R1']:5.1f} | {t['R2']:5.1f} | {t['RL']:5.1f} | {t['over']:4d} | {t['mid-word']:8d} |"
            f" {t['boilerplate']:11d} | {t['empty']:5d} |"
        )
    ours_t = table[METHODS[0].name]
    peers = [t["RL"] for name, t in table.items() if name != METHODS[0].name and name not in _CEILINGS]
    print(
        f"ours RL {ours_t['RL']:.1f} vs best peer {max(peers):.1f} ({ours_t['RL'] - max(peers):+.1f});"
        f" tags or entities leaked: {ours_t['leaks']}"
    )


_CEILINGS = {m.name for m in METHODS if m.ceiling}


# --- tuning: how the teaser's weights were chosen ------------------------------------------------

GRID = {
    "title": (0.0, 0.25, 0.5, 1.0),
    "first": (0.0, 0.25, 0.5, 1.0, 2.0),
    "cut": (0.8, 1.0, 1.2),
    "dependent": (0.7, 1.0),
    "paragraphs": (0.0, 1.0),
}


def tune(pairs: Sequence[tuple[dict, Article]], max_chars: int, folds: int = 10, repeats: int = 5) -> None:
    """Choose the teaser's weights on a grid by cross-validation: each fold's weights are chosen on
    the other folds, and the fold is then scored with them; prints that held-out estimate, the
    weights most folds chose, and how those weights do on each half."""
    import itertools
    import random
    from collections import Counter

    from digest.teaser import Weights, article_language, editors_choice, lead_candidates, lead_paragraphs

    grid = [Weights(**dict(zip(GRID, values))) for values in itertools.product(*GRID.values())]
    table: list[list[float]] = [[] for _ in grid]  # RL of each grid point's choice, per article
    for row, article in pairs:
        language = article_language(article)
        fixed = editors_choice(article)
        candidates = (
            [] if fixed else lead_candidates(lead_paragraphs(article, language)[0], article.title, language, max_chars)
        )
        rl = {c.text: _SCORER.score(row["human_summary"], c.text)["rougeL"].fmeasure * 100 for c in candidates}
        for g, w in enumerate(grid):
            best = max(candidates, key=lambda c: c.score(w), default=None)
            table[g].append(
                rl[best.text]
                if best
                else _SCORER.score(row["human_summary"], ours(article, max_chars))["rougeL"].fmeasure * 100
            )

    def avg(g: int, idx: Sequence[int]) -> float:
        return mean([table[g][i] for i in idx])

    n = len(pairs)
    rng = random.Random(1)
    estimates, chosen = [], Counter()
    for _ in range(repeats):
        order = list(range(n))
        rng.shuffle(order)
        parts = [order[k::folds] for k in range(folds)]
        total = 0.0
        for k in range(folds):
            train = [i for j in range(folds) if j != k for i in parts[j]]
            g = max(range(len(grid)), key=lambda g: avg(g, train))
            chosen[g] += 1
            total += sum(table[g][i] for i in parts[k])
        estimates.append(total / n)
    print(
        f"\n{folds}-fold cross-validation, {repeats} shuffles, {len(grid)} weightings: held-out RL {mean(estimates):.2f}"
        f" ({min(estimates):.2f}-{max(estimates):.2f})"
    )
    everything, even, odd = range(n), range(0, n, 2), range(1, n, 2)
    for g, times in chosen.most_common(3):
        print(
            f"  chosen by {times} of {folds * repeats} folds: {grid[g]}: all {avg(g, everything):.2f}, even {avg(g, even):.2f}, odd {avg(g, odd):.2f}"
        )
    for name, half, other in (("even", even, odd), ("odd", odd, even)):
        g = max(range(len(grid)), key=lambda g: avg(g, half))
        print(
            f"  best on the {name} lines alone: {grid[g]}: {name} {avg(g, half):.2f}, the other half {avg(g, other):.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("set_dir", nargs="?", type=Path)
    ap.add_argument("--max-chars", type=int, default=200)
    ap.add_argument("--show", type=int, default=0, help="print our teaser beside the human one for N articles")
    ap.add_argument("--tune", action="store_true", help="also rerun the cross-validated choice of the teaser's weights")
    args = ap.parse_args(argv)
    if args.set_dir is None:
        if not (DEFAULT_SET / "pairs.jsonl").is_file():
            print(f"bench/teasers.py: skipped: {DEFAULT_SET} is absent (pass a pairs set folder)")
            return 0
        args.set_dir = DEFAULT_SET
    if not (args.set_dir / "pairs.jsonl").is_file():
        print(f"bench/teasers.py: {args.set_dir}/pairs.jsonl not found; pass a pairs set folder", file=sys.stderr)
        return 2
    pairs = load_pairs(args.set_dir)
    started = time.perf_counter()
    rows = score(pairs, args.max_chars)
    print(f"scored {len(pairs)} articles × {len(METHODS)} methods in {time.perf_counter() - started:.1f}s")
    for label, keep in (
        ("all pairs", lambda i: True),
        ("even lines", lambda i: i % 2 == 0),
        ("odd lines", lambda i: i % 2 == 1),
    ):
        print_table(summarise(rows, keep), args.max_chars, label)
    # The same files with their titles removed (wire copy, micro-blog posts): the teaser needs none.
    untitled = [(row, replace(article, title="")) for row, article in pairs]
    titled_t = summarise(rows, lambda i: True)[METHODS[0].name]
    untitled_t = summarise(score(untitled, args.max_chars, METHODS[:1]), lambda i: True)[METHODS[0].name]
    print(
        f"\nours without titles: R1 {untitled_t['R1']:.1f}, R2 {untitled_t['R2']:.1f}, RL {untitled_t['RL']:.1f}"
        f" (with titles: RL {titled_t['RL']:.1f}); over {untitled_t['over']}, mid-word {untitled_t['mid-word']},"
        f" boilerplate {untitled_t['boilerplate']}, empty {untitled_t['empty']}"
    )
    if args.tune:
        tune(pairs, args.max_chars)
    for row, article in pairs[: args.show]:
        print(
            f"\n# {row['id']} | {article.title}\n  human: {row['human_summary']}\n  ours:  {ours(article, args.max_chars)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
