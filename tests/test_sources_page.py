"""Web pages: extraction quality on real pages, metadata, encodings, and feeds that fetch full pages."""

from __future__ import annotations

import importlib.util
import json
import statistics
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import ROOT, shared_path
from httpserver import FakeTime, Reply, TestServer

from digest.config import SourceSettings, load_config
from digest.pipeline import ingest
from digest.sources.http import Fetcher, FetchPolicy
from digest.sources.page import PageSource, extract_page, trafilatura_blocks
from digest.store import Store

NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)
UTC = ZoneInfo("UTC")


def _bench():
    spec = importlib.util.spec_from_file_location("bench_readability", ROOT / "bench" / "readability.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A spread of real pages: news, blogs, a wiki, right-to-left text, a page whose article is a table.
SAMPLE = [
    "ars-1",
    "bbc-1",
    "guardian-1",
    "nytimes-1",
    "medium-1",
    "wikipedia",
    "wikipedia-4",
    "lemonde-1",
    "rtl-1",
    "wordpress",
    "mozilla-1",
    "lwn-1",
]


def test_extracted_bodies_match_readability_on_a_sample_of_real_pages() -> None:
    pages = shared_path("corpus", "pages", "readability")
    bench = _bench()
    scores = {name: bench.score(pages / name) for name in SAMPLE}
    assert statistics.median(scores.values()) >= 0.90, scores
    assert min(scores.values()) >= 0.80, scores


def test_page_metadata_and_headings() -> None:
    page_dir = shared_path("corpus", "pages", "readability", "ars-1")
    meta = json.loads((page_dir / "expected-metadata.json").read_text())
    page = extract_page((page_dir / "source.html").read_text(encoding="utf-8"))
    assert page is not None
    assert page.title == meta["title"]
    assert page.author == meta["byline"]
    assert page.date == date(2015, 4, 16) or (isinstance(page.date, datetime) and page.date.date() == date(2015, 4, 16))
    assert page.description == meta["excerpt"]
    assert page.image and page.image.startswith("https://")
    assert page.body[0].kind == "p" and page.body[0].text.startswith(
        "A flaw in the wildly popular online game Minecraft"
    )
    wiki = extract_page(
        shared_path("corpus", "pages", "readability", "wikipedia", "source.html").read_text(encoding="utf-8")
    )
    assert wiki is not None
    headings = [b.text for b in wiki.body if b.kind == "h"]
    assert any(h.startswith("History") for h in headings)
    # The infobox table above the lead is left out: the lead is the article's first sentence.
    assert next(b for b in wiki.body if b.kind == "p").text.startswith("Mozilla is a free-software community")


def test_a_data_table_above_the_lead_is_dropped_but_one_below_is_kept() -> None:
    from lxml import etree

    body = etree.fromstring(
        "<body><table><row><cell>Born</cell><cell>1900</cell></row></table><p>The lead paragraph.</p>"
        "<table><row><cell>Film</cell><cell/><cell>1999</cell></row></table></body>"
    )
    assert [(b.kind, b.text) for b in trafilatura_blocks(body)] == [("p", "The lead paragraph."), ("p", "Film · 1999")]


@pytest.mark.parametrize(
    "name, text",
    [
        ("utf8.html", "Café"),
        ("iso-8859-1.html", "Frédéric"),
        # The meta charset comes after the first 1024 bytes; it is still found.
        ("iso-8859-1-meta-after-1024.html", "Frédéric"),
        ("utf8-meta-after-1024.html", "Frédéric"),
    ],
)
def test_html_page_encodings(name: str, text: str) -> None:
    path = shared_path("corpus", "feeds", "miniflux_encoding", name)
    src = PageSource(SourceSettings(name="p", kind="page", path=path), tz=UTC)
    (a,) = src.read(NOW)
    assert a.title == text
    assert [b.text for b in a.body] == ["Café"]


def test_a_page_source_over_http(write_config) -> None:
    page_dir = shared_path("corpus", "pages", "readability", "ars-1")
    html = (page_dir / "source.html").read_bytes()
    with TestServer(
        {"/story": lambda req: Reply(200, html, {"Content-Type": "text/html; charset=utf-8", "ETag": '"p1"'})}
    ) as server:
        src = PageSource(
            SourceSettings(name="ars", kind="page", url=server.url("/story")),
            tz=UTC,
            fetcher=Fetcher(FetchPolicy(host_delay=0)),
        )
        result = src.collect(NOW)
    (a,) = result.articles
    assert a.title.startswith("Just-released Minecraft exploit")
    assert a.published.date() == date(2015, 4, 16) and not a.date_is_first_seen
    # The page's canonical URL is on another site than the test server: the fetched URL names it.
    assert a.url == server.url("/story") and a.id == f"https://127.0.0.1:{server.port}/story"
    assert result.etag == '"p1"'


def test_a_feed_with_fetch_full_reads_each_new_items_page(write_config, tmp_path: Path) -> None:
    page_dir = shared_path("corpus", "pages", "readability", "ars-1")
    html = (page_dir / "source.html").read_bytes()
    with TestServer() as server:
        feed = (
            '<rss version="2.0"><channel><title>Stubs</title><link>https://example.org/</link>'
            f"<item><title>Minecraft exploit</title><link>{server.url('/story')}</link><guid>{server.url('/story')}</guid>"
            "<pubDate>Thu, 16 Apr 2015 10:00:00 GMT</pubDate><description>A flaw in the wildly popular online game…</description></item>"
            "</channel></rss>"
        ).encode()
        server.routes["/feed.xml"] = lambda req: Reply(200, feed)
        server.routes["/story"] = lambda req: Reply(200, html, {"Content-Type": "text/html"})
        path = write_config(
            f'\n[[sources]]\nname = "stubs"\nkind = "feed"\nurl = "{server.url("/feed.xml")}"\nfetch_full = true\n'
        )
        settings = load_config(path)
        store = Store(settings.state_url)
        fake = FakeTime()
        ingest(settings, store, now=NOW, fetcher=Fetcher(FetchPolicy(), clock=fake.clock, sleep=fake.sleep))
        (a,) = [x for x in store.articles.all() if x.source == "stubs"]
        assert len(a.body) > 10 and a.body[0].text.startswith(
            "A flaw in the wildly popular online game Minecraft makes it easy"
        )
        assert a.summary is None, "the stub was the page's first words"
        assert a.image and a.image.startswith("https://cdn.arstechnica.net/")
        # The next run does not fetch the page again, and keeps the full text.
        ingest(settings, store, now=NOW, fetcher=Fetcher(FetchPolicy(), clock=fake.clock, sleep=fake.sleep))
        assert server.paths() == ["/feed.xml", "/story", "/feed.xml"]
        (again,) = [x for x in store.articles.all() if x.source == "stubs"]
        assert again.body == a.body


def test_fetch_full_is_for_feeds_only(write_config) -> None:
    from digest.errors import ConfigError

    path = write_config('\n[[sources]]\nname = "p"\nkind = "page"\nurl = "https://example.org/"\nfetch_full = true\n')
    with pytest.raises(ConfigError, match=r"sources\[1\]: fetch_full applies to feed sources only"):
        load_config(path)
    typo = write_config(
        '\n[[sources]]\nname = "f"\nkind = "feed"\nurl = "https://example.org/feed"\nfetch_ful = true\n'
    )
    with pytest.raises(ConfigError, match=r"sources\[1\]\.fetch_ful: unknown key"):
        load_config(typo)
