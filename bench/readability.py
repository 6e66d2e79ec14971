"""How well page extraction finds the article: token F1 against Mozilla Readability's expected output.

For every page in ../shared/corpus/pages/readability, the body digest extracts from source.html
(digest.sources.page.extract_page: trafilatura, then digest's body blocks) is compared with the
text of expected.html, the clean article Readability's own tests expect. Both are lower-cased and
split into word tokens; F1 is the harmonic mean of token precision and recall over the multisets.

Printed: the median F1 (the target is ≥ 0.90), the mean, the worst ten pages, and, as a peer
measured in the same run, the same score for trafilatura's own plain-text output (what digest
would get without its block model).

    python bench/readability.py [--limit N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import lxml.html
import trafilatura

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.sources.encoding import decode_document  # noqa: E402
from digest.sources.page import extract_page  # noqa: E402

PAGES = ROOT.parent / "shared" / "corpus" / "pages" / "readability"
TARGET = 0.90


def tokens(text: str) -> list[str]:
    import re

    return re.findall(r"\w+", text.lower())


def token_f1(got: list[str], want: list[str]) -> float:
    common = sum((Counter(got) & Counter(want)).values())
    if not common:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def expected_text(page: Path) -> str:
    return lxml.html.fromstring(decode_document((page / "expected.html").read_bytes()).text).text_content()


def source_html(page: Path) -> str:
    return decode_document((page / "source.html").read_bytes()).text


def score(page: Path) -> float:
    """Token F1 of digest's extracted body for one page."""
    extracted = extract_page(source_html(page))
    body = " ".join(b.text for b in extracted.body) if extracted else ""
    return token_f1(tokens(body), tokens(expected_text(page)))


def peer_score(page: Path) -> float:
    text = trafilatura.extract(source_html(page), include_comments=False) or ""
    return token_f1(tokens(text), tokens(expected_text(page)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N pages")
    args = parser.parse_args()
    if not PAGES.is_dir():
        print(f"skipped: {PAGES} is absent")
        return 0
    pages = sorted(p for p in PAGES.iterdir() if (p / "source.html").exists() and (p / "expected.html").exists())
    if args.limit:
        pages = pages[: args.limit]
    started = time.perf_counter()
    ours = [(score(p), p.name) for p in pages]
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    peer = [peer_score(p) for p in pages]
    peer_s = time.perf_counter() - started
    f1s = [f for f, _ in ours]
    median = statistics.median(f1s)
    print(f"pages: {len(pages)}")
    print(
        f"digest body token F1: median {median:.3f}, mean {statistics.mean(f1s):.3f} (target: median >= {TARGET:.2f}) in {ours_s:.1f} s"
    )
    print(
        f"peer, trafilatura.extract plain text: median {statistics.median(peer):.3f}, mean {statistics.mean(peer):.3f} in {peer_s:.1f} s"
    )
    print("worst ten:")
    for f1, name in sorted(ours)[:10]:
        print(f"  {f1:.3f}  {name}")
    return 0 if median >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
