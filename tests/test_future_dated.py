"""Articles dated in the future: stored, held out of every issue until their date, and said so."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from conftest import write_article

from digest.config import load_config
from digest.pipeline import ingest
from digest.select import select_articles
from digest.store import Store
from digest.web.preview import Preview

AS_OF = datetime.fromisoformat("2025-08-11T09:00:00+01:00")


def _content(tmp_path: Path) -> None:
    write_article(tmp_path / "content", "now.md", title="Today's story", date="2025-08-08T10:00:00+01:00", body="Now.")
    write_article(
        tmp_path / "content", "later.md", title="Embargoed story", date="2025-09-01T10:00:00+01:00", body="Later."
    )


def test_ingest_says_which_articles_are_dated_in_the_future(write_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = load_config(write_config())
    _content(tmp_path)
    store = Store(settings.state_url)
    (outcome,) = ingest(settings, store, now=AS_OF).sources
    assert outcome.future == 1
    assert outcome.note == "2 articles (2 new, 0 updated, 1 dated in the future, held until their date)"


def test_selection_holds_a_future_article_until_its_date() -> None:
    from renderdata import make_article

    later = make_article(1, published=datetime(2025, 9, 1, 9, tzinfo=timezone.utc))
    held = select_articles(
        [later], as_of=AS_OF, window_start=datetime(2025, 8, 4, tzinfo=timezone.utc), already_sent=set(), max_articles=5
    )
    assert held.chosen == () and "held until its date" in held.skipped[0].reason
    due = select_articles(
        [later],
        as_of=datetime(2025, 9, 2, tzinfo=timezone.utc),
        window_start=datetime(2025, 8, 26, tzinfo=timezone.utc),
        already_sent=set(),
        max_articles=5,
    )
    assert due.chosen == (later,)


def test_the_preview_says_an_article_is_held_until_its_date(write_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config()
    _content(tmp_path)
    preview = Preview(cfg, as_of=AS_OF)
    try:
        assert preview.refresh()
        snap = preview.snapshot
        assert snap.error is None
        assert [a.title for a in snap.chosen] == ["Today's story"]
        assert (
            "“Embargoed story” (articles) is dated Mon 1 Sep 2025 10:00, after this issue: it is held until then"
            in (snap.warnings)
        )
    finally:
        preview.close()
