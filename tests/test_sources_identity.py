"""Identity and dedupe: canonical URLs, trustworthy GUIDs, and one row per article in the store."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from statedb import state_url

from digest.models import Article, Block, KnownArticles, StoredArticle
from digest.pipeline import store_articles
from digest.sources.feed import FeedItem, ParsedFeed, feed_articles
from digest.sources.identity import (
    article_id,
    canonical_url,
    plan_upsert,
    recognition_keys,
    text_fingerprint,
    trusted_guids,
)
from digest.store import Store

NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)
LONG = "A paragraph long enough to tell one article from another by its words alone. " * 4


@pytest.mark.parametrize(
    "url, canonical",
    [
        ("https://example.org/a/b", "https://example.org/a/b"),
        ("HTTP://WWW.Example.ORG:80/a/b/", "https://example.org/a/b"),
        ("https://example.org/a?utm_source=rss&utm_medium=feed&id=3", "https://example.org/a?id=3"),
        ("https://example.org/a?fbclid=XyZ&gclid=1&ref=newsletter&page=2#comments", "https://example.org/a?page=2"),
        ("https://example.org/a/./b/../c", "https://example.org/a/c"),
        ("https://example.org:8443/a", "https://example.org:8443/a"),
        ("https://example.org/", "https://example.org"),
        ("https://example.org/%7Euser/caf%C3%A9", "https://example.org/~user/caf%C3%A9"),
        ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
        ("mailto:someone@example.org", None),
        ("/relative/path", None),
        ("", None),
    ],
)
def test_canonical_url(url: str, canonical: str | None) -> None:
    assert canonical_url(url) == canonical


def test_trusted_guids_are_unique_and_not_the_site_itself() -> None:
    guids = ["tag:x,2025:1", "tag:x,2025:1", "https://example.org/", "post-7", "", None]
    assert trusted_guids(guids, feed_links=["https://example.org"]) == {"post-7"}


def test_article_ids_prefer_guid_then_url_then_text() -> None:
    body = (Block("Some text."),)
    # An http GUID in canonical form meets the same article's link from elsewhere.
    assert (
        article_id(source="s", guid="http://www.example.org/p/1/?utm_source=x", url=None, title="T", body=body)
        == "https://example.org/p/1"
    )
    assert (
        article_id(source="s", guid="tag:example.org,2025:42", url="https://example.org/p/1", title="T", body=body)
        == "tag:example.org,2025:42"
    )
    # A bare GUID is unique only within its feed.
    assert article_id(source="s", guid="42", url="https://example.org/p/1", title="T", body=body) == "s#42"
    assert (
        article_id(source="s", guid=None, url="https://example.org/p/1?fbclid=1", title="T", body=body)
        == "https://example.org/p/1"
    )
    by_text = article_id(source="s", guid=None, url=None, title="T", body=body)
    assert by_text.startswith("sha256:") and by_text == article_id(
        source="s", guid=None, url=None, title="T", body=body
    )
    assert by_text != article_id(source="s", guid=None, url=None, title="T", body=(Block("Other text."),))
    assert len(article_id(source="s", guid="tag:" + "x" * 500, url=None, title="T", body=body)) < 255


def test_a_feed_with_one_guid_on_every_item_falls_back_to_links() -> None:
    items = tuple(
        FeedItem(
            guid="https://example.org/", link=f"https://example.org/p/{n}", title=f"Post {n}", content="<p>Text.</p>"
        )
        for n in range(3)
    )
    articles, _ = feed_articles(ParsedFeed("rss20", "Feed", "https://example.org/", None, items), source="s", now=NOW)
    assert [a.id for a in articles] == [f"https://example.org/p/{n}" for n in range(3)]


def article(
    id: str, *, source: str = "a", title: str = "Title", url: str | None = None, body: str = LONG, **kw: object
) -> Article:
    return Article(
        id=id, source=source, title=title, url=url, published=NOW - timedelta(days=1), body=(Block(body),), **kw
    )  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(state_url(tmp_path))


def test_the_same_article_from_two_sources_is_stored_once(store: Store) -> None:
    first = article("tag:a,2025:1", source="blog", url="https://example.org/post?utm_source=rss")
    other = article("https://example.org/post", source="aggregator", url="https://www.example.org/post/#top")
    assert store_articles(store, [first], now=NOW).new == 1
    report = store_articles(store, [other], now=NOW)
    assert (report.new, report.updated, report.duplicates) == (0, 0, 1)
    (kept,) = store.articles.all()
    assert kept.source == "blog" and kept.id == "tag:a,2025:1"


def test_the_same_text_under_two_urls_is_stored_once(store: Store) -> None:
    store_articles(store, [article("https://one.example/p", source="one", url="https://one.example/p")], now=NOW)
    report = store_articles(
        store, [article("https://two.example/p", source="two", url="https://two.example/p")], now=NOW
    )
    assert report.duplicates == 1 and len(store.articles.all()) == 1


def test_a_fuller_copy_from_another_source_replaces_a_stub(store: Store) -> None:
    store_articles(
        store, [article("a1", source="feed", url="https://example.org/p", body="Just the first line…")], now=NOW
    )
    report = store_articles(
        store, [article("https://example.org/p", source="page", url="https://example.org/p")], now=NOW
    )
    assert report.updated == 1
    (kept,) = store.articles.all()
    assert kept.id == "a1" and kept.source == "page" and kept.body[0].text == LONG
    # The stub source coming round again changes nothing.
    again = store_articles(
        store, [article("a1", source="feed", url="https://example.org/p", body="Just the first line…")], now=NOW
    )
    assert again.duplicates == 1 and store.articles.all()[0].source == "page"


def test_an_edited_article_updates_in_place(store: Store) -> None:
    original = article("tag:a,2025:1", url="https://example.org/p")
    store_articles(store, [original], now=NOW - timedelta(days=1))
    edited = replace(original, title="Title (corrected)", updated=NOW)
    report = store_articles(store, [edited], now=NOW)
    assert (report.new, report.updated) == (0, 1)
    (kept,) = store.articles.all()
    assert kept.title == "Title (corrected)" and kept.updated == NOW
    assert store_articles(store, [edited], now=NOW).unchanged == 1


def test_a_changed_guid_with_the_same_link_is_the_same_article(store: Store) -> None:
    store_articles(store, [article("tag:a,2025:old", url="https://example.org/p")], now=NOW)
    report = store_articles(
        store, [article("tag:a,2025:new", url="https://example.org/p?utm_campaign=x", title="Retitled")], now=NOW
    )
    assert (report.new, report.updated) == (0, 1)
    (kept,) = store.articles.all()
    assert kept.id == "tag:a,2025:old" and kept.title == "Retitled"
    # And the new GUID is now known: the next read is recognised directly.
    assert (
        store_articles(
            store, [article("tag:a,2025:new", url="https://example.org/p?utm_campaign=x", title="Retitled")], now=NOW
        ).unchanged
        == 1
    )


def test_two_items_of_one_feed_sharing_a_link_stay_two_articles(store: Store) -> None:
    # A link blog: two posts about the same page, each with its own GUID.
    one = article("tag:df,2025:1", url="https://elsewhere.example/story", title="First take", body="One view. " * 30)
    two = article(
        "tag:df,2025:2", url="https://elsewhere.example/story", title="Second take", body="Another view. " * 30
    )
    assert store_articles(store, [one, two], now=NOW).new == 2
    assert store_articles(store, [one, two], now=NOW).unchanged == 2
    assert len(store.articles.all()) == 2


def test_an_undated_item_keeps_its_first_seen_date(store: Store) -> None:
    undated = Article(
        id="u1", source="a", title="No date", published=NOW, body=(Block("Text."),), date_is_first_seen=True
    )
    store_articles(store, [undated], now=NOW)
    later = replace(undated, published=NOW + timedelta(days=3), title="No date, edited")
    store_articles(store, [later], now=NOW + timedelta(days=3))
    (kept,) = store.articles.all()
    assert kept.published == NOW and kept.title == "No date, edited" and kept.date_is_first_seen
    # Read again unchanged a week later: not an update, still dated when first seen.
    assert (
        store_articles(
            store, [replace(later, published=NOW + timedelta(days=7))], now=NOW + timedelta(days=7)
        ).unchanged
        == 1
    )


def test_fingerprints_ignore_case_and_punctuation_but_need_enough_text() -> None:
    a = text_fingerprint("Title", (Block(LONG),))
    assert a == text_fingerprint("title!", (Block(LONG.upper().replace(".", ",")),))
    assert text_fingerprint("Title", (Block("Short."),)) is None


def test_one_sites_feeds_in_two_formats_are_stored_once(write_config, tmp_path) -> None:
    """Daring Fireball's Atom and JSON feeds of the same day: linked posts point at the linked page
    in one and at the permalink in the other, and their text is a line long, so neither the URL nor
    the text fingerprint joins them; the title and minute of publication do."""
    from conftest import shared_path

    from digest.config import load_config
    from digest.pipeline import ingest

    nnw = shared_path("corpus", "feeds", "netnewswire")
    cfg = write_config(
        f'\n[[sources]]\nname = "df-atom"\nkind = "feed"\npath = "{nnw / "DaringFireball.atom"}"\n'
        f'\n[[sources]]\nname = "df-json"\nkind = "feed"\npath = "{nnw / "DaringFireball.json"}"\n'
    )
    settings = load_config(cfg)
    store = Store(settings.state_url)
    _folder, atom, as_json = ingest(settings, store, now=NOW).sources
    assert (atom.seen, atom.new) == (48, 48)
    assert (as_json.seen, as_json.new, as_json.duplicates) == (48, 0, 48)
    assert len(store.articles.all()) == 48


def test_same_title_same_minute_from_another_source_is_a_duplicate(store: Store) -> None:
    one = article(
        "tag:a,2025:1", source="a", title="A short linked post", url="https://elsewhere.example/x", body="Nice."
    )
    two = article(
        "https://a.example/linked/x",
        source="b",
        title="A short linked post",
        url="https://a.example/linked/x",
        body="Nice.",
    )
    later = replace(
        two,
        id="https://a.example/linked/y",
        url="https://a.example/linked/y",
        published=two.published + timedelta(days=1),
    )
    store_articles(store, [one], now=NOW)
    assert store_articles(store, [two], now=NOW).duplicates == 1
    assert store_articles(store, [later], now=NOW).new == 1, "the same title on another day is another article"


def test_posts_that_are_anchors_on_one_page_stay_apart(store: Store) -> None:
    """Scripting News: each post is an anchor on its day's page, so the fragment is what tells
    them apart (a canonical URL drops fragments), and their shared page URL identifies none."""
    items = tuple(
        FeedItem(
            guid=f"http://scripting.com/2017/06/26.html#a0{n}",
            link=f"http://scripting.com/2017/06/26.html#a0{n}",
            content=f"<p>Post {n}.</p>",
        )
        for n in range(3)
    )
    articles, _ = feed_articles(
        ParsedFeed("rss20", "Scripting News", "http://scripting.com/", None, items), source="s", now=NOW
    )
    assert [a.id for a in articles] == [f"https://scripting.com/2017/06/26.html#a0{n}" for n in range(3)]
    assert store_articles(store, articles, now=NOW).new == 3
    # The oldest post drops out of the feed and a new one arrives on the same page: still apart.
    newer = feed_articles(
        ParsedFeed(
            "rss20",
            "S",
            None,
            None,
            items[1:]
            + (
                FeedItem(
                    guid="http://scripting.com/2017/06/26.html#a09",
                    link="http://scripting.com/2017/06/26.html#a09",
                    content="<p>Post 9.</p>",
                ),
            ),
        ),
        source="s",
        now=NOW,
    )[0]
    report = store_articles(store, newer, now=NOW)
    assert (report.new, report.unchanged) == (1, 2) and len(store.articles.all()) == 4


def test_scripting_news_keeps_every_post() -> None:
    from conftest import shared_path

    from digest.sources.feed import parse_feed

    path = shared_path("corpus", "feeds", "netnewswire", "scriptingNews.rss")
    articles, _ = feed_articles(parse_feed(path.read_bytes()), source="s", now=NOW)
    # 50 items, two of them listed twice.
    assert len(articles) == len({a.id for a in articles}) == 48


def test_the_plan_comes_from_what_the_store_knows_without_a_store() -> None:
    incoming = article("tag:a,2025:1", url="https://example.org/p")
    keys = recognition_keys([incoming])
    fresh = plan_upsert([incoming], keys, KnownArticles(owners={}, by_id={}), now=NOW)
    assert [w.article for w in fresh.inserts] == [incoming] and fresh.updates == ()
    assert (fresh.report.new, fresh.inserts[0].first_seen) == (1, NOW)
    assert [(k.key, k.article_id) for k in fresh.keys] == [(key, incoming.id) for _kind, key in keys[0]]
    # Known under its URL from another source, with more text: a duplicate; only its other keys are added.
    url_key = dict(keys[0])["url"]
    stored = StoredArticle(
        id="x", source="other", content_hash="h", first_seen=NOW - timedelta(days=2), published=NOW, body_chars=10**6
    )
    known = KnownArticles(owners={url_key: "x"}, by_id={"x": stored})
    duplicate = plan_upsert([incoming], keys, known, now=NOW)
    assert duplicate.report.duplicates == 1 and duplicate.inserts == duplicate.updates == ()
    assert {k.article_id for k in duplicate.keys} == {"x"} and url_key not in {k.key for k in duplicate.keys}
    # With less text stored there, this copy replaces it in place: same id, same first-seen time.
    known = KnownArticles(owners={url_key: "x"}, by_id={"x": dataclasses.replace(stored, body_chars=1)})
    (update,) = plan_upsert([incoming], keys, known, now=NOW).updates
    assert (update.article.id, update.article.source, update.first_seen) == ("x", "a", NOW - timedelta(days=2))
