from __future__ import annotations

from datetime import datetime, timedelta, timezone

from digest.models import Article, Block
from digest.select import select_articles, too_few_articles

T0 = datetime(2025, 8, 11, 8, 0, tzinfo=timezone.utc)


def art(i: str, days_before: float) -> Article:
    return Article(id=i, source="s", title=f"T{i}", published=T0 - timedelta(days=days_before), body=(Block("x"),))


def test_selects_window_newest_first_and_caps() -> None:
    items = [art("old", 9), art("a", 1), art("b", 3), art("c", 6.9), art("future", -1), art("sent", 2)]
    sel = select_articles(items, as_of=T0, window_start=T0 - timedelta(days=7), already_sent={"sent"}, max_articles=2)
    assert [a.id for a in sel.chosen] == ["a", "b"]
    reasons = {s.article.id: s.reason for s in sel.skipped}
    assert "after" in reasons["future"]
    assert "before the window" in reasons["old"]
    assert "already sent" in reasons["sent"]
    assert "cap of 2" in reasons["c"]


def test_as_of_moment_moves_the_window() -> None:
    items = [art("a", 1), art("b", 8), art("c", 10)]
    week_earlier = T0 - timedelta(days=7)
    sel = select_articles(
        items, as_of=week_earlier, window_start=week_earlier - timedelta(days=7), already_sent=set(), max_articles=10
    )
    assert [a.id for a in sel.chosen] == ["b", "c"]
    sel = select_articles(items, as_of=T0, window_start=T0 - timedelta(days=7), already_sent=set(), max_articles=10)
    assert [a.id for a in sel.chosen] == ["a"]


def test_window_edges_are_half_open() -> None:
    items = [art("edge-start", 7), art("edge-end", 0)]
    sel = select_articles(items, as_of=T0, window_start=T0 - timedelta(days=7), already_sent=set(), max_articles=10)
    assert [a.id for a in sel.chosen] == ["edge-end"]


def test_too_few_articles_says_why_an_issue_is_skipped() -> None:
    assert too_few_articles(2, 2) is None and too_few_articles(0, 0) is None
    assert too_few_articles(1, 2) == "only 1 new article, fewer than selection.min_articles = 2"
    assert too_few_articles(0, 1) == "only 0 new articles, fewer than selection.min_articles = 1"
