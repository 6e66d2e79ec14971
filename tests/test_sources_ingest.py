"""The ingest stage: one broken source never stops the others, and health is kept per source."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from statedb import state_url

from digest.config import load_config
from digest.pipeline import ingest
from digest.sources.feed import FeedSource
from digest.sources.health import build_warnings, source_health
from digest.store import Store

NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)
RSS = """<rss version="2.0"><channel><title>N</title><item><title>{title}</title><link>https://n.example/1</link>
<pubDate>Fri, 08 Aug 2025 10:00:00 GMT</pubDate><description>Text.</description></item></channel></rss>"""


def test_an_unexpected_error_in_one_source_is_reported_and_the_others_still_ingest(
    write_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "feed.xml").write_text(RSS.format(title="Fine"))
    (tmp_path / "content" / "a.md").parent.mkdir(exist_ok=True)
    (tmp_path / "content" / "a.md").write_text('---\ntitle: "Folder piece"\ndate: 2025-08-08\n---\n\nBody.\n')
    cfg = write_config('\n[[sources]]\nname = "broken"\nkind = "feed"\npath = "feed.xml"\n')
    settings = load_config(cfg)
    store = Store(settings.state_url)

    def explode(self, now, state=None):  # type: ignore[no-untyped-def]
        raise KeyError("a bug")

    monkeypatch.setattr(FeedSource, "collect", explode)
    folder, broken = ingest(settings, store, now=NOW).sources
    assert folder.error is None and folder.new == 1
    assert broken.error == f"source 'broken': unexpected error reading {tmp_path / 'feed.xml'}: KeyError: 'a bug'"
    assert [a.title for a in store.articles.all()] == ["Folder piece"]


def test_health_counts_failures_in_a_row_and_a_success_resets_them(write_config, tmp_path: Path) -> None:
    cfg = write_config('\n[[sources]]\nname = "news"\nkind = "feed"\npath = "news.xml"\n')
    settings = load_config(cfg)
    store = Store(settings.state_url)
    for n in range(1, 4):
        ingest(settings, store, now=NOW + timedelta(days=n))
        row = {r.name: r for r in store.sources.all()}["news"]
        assert row.failures == n and row.last_error_at == NOW + timedelta(days=n) and row.last_success is None
    assert build_warnings(source_health(settings.sources, store.sources.all())) == [
        f"source 'news' has failed 3 runs in a row (last error: source 'news': cannot read {tmp_path / 'news.xml'}: No such file or directory)"
    ]
    # Only configured sources count: one removed from the config is not warned about.
    folder_only = [s for s in settings.sources if s.name == "articles"]
    assert build_warnings(source_health(folder_only, store.sources.all())) == []
    (tmp_path / "news.xml").write_text(RSS.format(title="Back"))
    ingest(settings, store, now=NOW + timedelta(days=5))
    row = {r.name: r for r in store.sources.all()}["news"]
    assert row.failures == 0 and row.last_success == NOW + timedelta(days=5)
    assert row.last_note == "1 article (1 new, 0 updated)"
    assert build_warnings(source_health(settings.sources, store.sources.all())) == []


def test_a_new_location_forgets_what_was_remembered_about_the_old_one(tmp_path: Path) -> None:
    store = Store(state_url(tmp_path))
    store.sources.record_read(
        "news",
        "https://a.example/feed",
        error=None,
        now=NOW,
        validators=('"e1"', "Fri, 08 Aug 2025 10:00:00 GMT"),
        moved_to="https://b.example/feed",
    )
    assert store.sources.get("news", "https://a.example/feed").etag == '"e1"'
    # The config now names another URL: no validators or redirect from the old one apply.
    assert store.sources.get("news", "https://c.example/feed") is None
    store.sources.record_read("news", "https://c.example/feed", error=None, now=NOW)
    row = store.sources.get("news", "https://c.example/feed")
    assert row.etag is None and row.last_modified is None and row.moved_to is None
