"""Feeds item by item: titles, links, dates, body, summary, image, categories; JSON Feed validation."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest.config import SourceSettings
from digest.errors import SourceError
from digest.sources.feed import FeedError, FeedSource, feed_articles, parse_feed
from digest.sources.jsonfeed import JsonFeedError, parse_json_feed
from digest.sources.markup import html_blocks

NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:media="http://search.yahoo.com/mrss/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>Example &amp; Co</title>
  <link>https://example.org/</link>
  <language>en-gb</language>
  <item>
    <title>&lt;em&gt;Salt&lt;/em&gt; &amp;amp; pepper: a review</title>
    <link>/reviews/salt?utm_source=rss&amp;utm_medium=feed</link>
    <guid isPermaLink="false">review-salt</guid>
    <pubDate>Wed, 06 Aug 2025 10:30:00 +0100</pubDate>
    <dc:creator>Ana Ruiz</dc:creator>
    <category>Film</category><category>Reviews</category><category>Film</category>
    <description>An editor's one-line pitch, not the opening words.</description>
    <content:encoded><![CDATA[
      <figure><img src="/img/salt.jpg"><figcaption>Photo: Studio</figcaption></figure>
      <p>The <b>first</b> paragraph&nbsp;says   what it is about.</p>
      <h2>A subheading</h2>
      <p>Second paragraph.<br><br>Third, after two breaks.</p>
      <script>track()</script>
    ]]></content:encoded>
    <media:content url="https://cdn.example.org/salt-large.jpg" medium="image"/>
  </item>
  <item>
    <title>No date here</title>
    <link>https://example.org/undated</link>
    <description><![CDATA[<p>Opening words of the post and then the rest of it follows on.</p><p>More.</p>]]></description>
  </item>
  <item>
    <link>https://example.org/micro/1</link>
    <description>A micro post with no title. It has two sentences.</description>
    <pubDate>Tue, 05 Aug 2025 08:00:00 GMT</pubDate>
    <enclosure url="https://example.org/cover.png" type="image/png" length="100"/>
  </item>
  <item>
    <title>Excerpted</title>
    <link>https://example.org/excerpted</link>
    <pubDate>Mon, 04 Aug 2025 08:00:00 GMT</pubDate>
    <description>The opening words of the article and then [&#8230;]</description>
    <content:encoded><![CDATA[<p>The opening words of the article and then some more words.</p>]]></content:encoded>
  </item>
</channel>
</rss>"""


@pytest.fixture(scope="module")
def rss_articles():
    parsed = parse_feed(RSS.encode(), url="https://example.org/feed/")
    return feed_articles(parsed, source="ex", now=NOW, feed_url="https://example.org/feed/")[0]


def test_rss_item_fields(rss_articles) -> None:
    a = rss_articles[0]
    assert a.title == "Salt & pepper: a review"
    assert a.url == "https://example.org/reviews/salt?utm_source=rss&utm_medium=feed"
    # The GUID says it is not a permalink and is unique in the feed: it is the id, scoped to the source.
    assert a.id == "ex#review-salt"
    assert a.published == datetime(2025, 8, 6, 9, 30, tzinfo=timezone.utc) and a.published.tzinfo is not None
    assert a.author == "Ana Ruiz"
    assert a.tags == ("Film", "Reviews")
    assert a.language == "en-gb"
    assert a.summary == "An editor's one-line pitch, not the opening words."
    assert not a.summary_by_editor, "a feed's description is the site's, whoever wrote it"
    assert a.image == "https://cdn.example.org/salt-large.jpg"
    assert [(b.kind, b.text) for b in a.body] == [
        ("p", "The first paragraph says what it is about."),
        ("h", "A subheading"),
        ("p", "Second paragraph."),
        ("p", "Third, after two breaks."),
    ]


def test_an_undated_item_is_dated_when_first_seen_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        parsed = parse_feed(RSS.encode(), url="https://example.org/feed/")
        articles, _ = feed_articles(parsed, source="ex", now=NOW)
    undated = articles[1]
    assert undated.date_is_first_seen and undated.published == NOW
    assert not any(a.date_is_first_seen for a in articles if a is not undated)
    assert any("1 item(s) carry no date" in r.getMessage() for r in caplog.records)


def test_a_description_that_is_the_body_is_not_a_summary(rss_articles) -> None:
    undated, micro, excerpted = rss_articles[1:]
    # Only a description: it is the body, not a summary.
    assert undated.summary is None and [b.text for b in undated.body] == [
        "Opening words of the post and then the rest of it follows on.",
        "More.",
    ]
    # An automatic excerpt ("first words [...]") of the full content is dropped.
    assert excerpted.summary is None
    # No title: made from the first sentence of the body.
    assert micro.title == "A micro post with no title."
    assert micro.image == "https://example.org/cover.png"


def test_atom_xml_base_content_types_and_images() -> None:
    atom = b"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://blog.example.org/posts/">
  <title type="html">A &lt;b&gt;blog&lt;/b&gt;</title>
  <link href="https://blog.example.org/"/>
  <author><name>Feed Author</name></author>
  <entry>
    <id>tag:blog.example.org,2025:1</id>
    <title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">Markup <i>in</i> a title</div></title>
    <link rel="alternate" href="first-post.html"/>
    <updated>2025-08-07T12:00:00+02:00</updated>
    <summary type="text">Plain text summary with a &lt;tag&gt; in it.</summary>
    <content type="html">&lt;p&gt;Body &lt;img src="pic.jpg"&gt; text.&lt;/p&gt;</content>
  </entry>
</feed>"""
    (a,) = feed_articles(parse_feed(atom), source="b", now=NOW)[0]
    assert a.title == "Markup in a title"
    assert a.url == "https://blog.example.org/posts/first-post.html"
    assert a.id == "tag:blog.example.org,2025:1"
    assert a.published == datetime(2025, 8, 7, 10, 0, tzinfo=timezone.utc) == a.updated
    assert a.author == "Feed Author"
    assert a.image == "https://blog.example.org/posts/pic.jpg"
    assert a.summary == "Plain text summary with a <tag> in it."


def test_bluesky_style_link_uri_attribute_keeps_the_web_address() -> None:
    feed = b"""<rss version="2.0"><channel><title>t</title><item><title>Post</title>
      <link uri="at://did:plc:abc/app.bsky.feed.post/1">https://bsky.app/profile/x/post/1</link></item></channel></rss>"""
    (item,) = parse_feed(feed).items
    assert item.link == "https://bsky.app/profile/x/post/1"


def test_control_characters_and_odd_whitespace_are_cleaned() -> None:
    feed = "<rss version='2.0'><channel><item><title>ab\x08cd\u00a0 e</title><description>x\u00ady</description></item></channel></rss>"
    (item,) = parse_feed(feed.encode()).items
    assert item.title == "abcd e"


@pytest.mark.parametrize(
    "document, reason",
    [
        (b"", "the document is empty"),
        (b"<opml version='2.0'><body/></opml>", "an OPML subscription list"),
        (
            b'<!DOCTYPE html><html><head><link rel="alternate" type="application/rss+xml" href="https://x.example/feed.xml"></head></html>',
            "an HTML page, not a feed; the page names its feed: https://x.example/feed.xml",
        ),
        (b"<note><to>Tove</to></note>", "no RSS, Atom or RDF root element"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', '"items" must be a list'),
        (b'{"title": "x"}', 'no "version"'),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'{"version": ', "not valid JSON"),
    ],
)
def test_unreadable_documents_say_why(document: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        parse_feed(document)
    assert reason in str(err.value) and "\n" not in str(err.value)


def test_an_unreadable_file_is_one_line_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "subs.opml"
    bad.write_text("<opml version='2.0'><body/></opml>")
    src = FeedSource(SourceSettings(name="subs", kind="feed", path=bad), tz=ZoneInfo("UTC"))
    with pytest.raises(SourceError) as err:
        src.read(NOW)
    assert str(err.value).startswith(f"source 'subs': {bad}: an OPML subscription list")


# --- JSON Feed -------------------------------------------------------------------------------------


def jf(**fields: object) -> bytes:
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "home_page_url": "https://j.example/"}
    doc.update(fields)
    return json.dumps(doc).encode()


def test_json_feed_items() -> None:
    data = jf(
        language="de",
        authors=[{"name": "Feed Person"}],
        items=[
            {
                "id": 17,
                "url": "/posts/17",
                "title": "Tags like <b> are words here &amp; entities decode",
                "content_html": "<p>Hello <b>there</b>.</p>",
                "summary": "A written summary.",
                "date_published": "2025-08-01T10:00:00.52+02:00",
                "date_modified": "2025-08-02T10:00:00Z",
                "authors": [{"name": "Item Person"}],
                "tags": ["a", "b"],
                "banner_image": "https://j.example/banner.png",
            },
            {"id": "x2", "content_text": "First paragraph.\n\nSecond paragraph.", "image": "/i.png"},
        ],
    )
    one, two = feed_articles(parse_feed(data), source="j", now=NOW)[0]
    assert one.id == "j#17" and one.url == "https://j.example/posts/17"
    assert one.title == "Tags like <b> are words here & entities decode"
    assert one.published == datetime(2025, 8, 1, 8, 0, 0, 520000, tzinfo=timezone.utc)
    assert one.updated == datetime(2025, 8, 2, 10, 0, tzinfo=timezone.utc)
    assert one.author == "Item Person" and one.tags == ("a", "b") and one.language == "de"
    assert one.summary == "A written summary." and one.image == "https://j.example/banner.png"
    assert [b.text for b in two.body] == ["First paragraph.", "Second paragraph."]
    assert two.title == "First paragraph." and two.author == "Feed Person" and two.date_is_first_seen
    assert two.image == "https://j.example/i.png"


def test_json_feed_validation_reports_item_problems_and_keeps_the_rest() -> None:
    feed = parse_json_feed(
        jf(
            items=[
                "not an object",
                {"url": "https://j.example/no-id", "title": "No id"},
                {"id": "ok", "title": "Fine", "date_published": "yesterday", "author": "just a string"},
                {"id": "bad-title", "title": 42},
            ]
        )
    )
    assert [i.title for i in feed.items] == ["No id", "Fine", None]
    problems = "\n".join(feed.problems)
    assert "items[0]: expected an object, got str; item skipped" in problems
    assert "items[1]: no id; identified by its url" in problems
    assert "items[2].date_published: not an RFC 3339 date-time: 'yesterday'; ignored" in problems
    assert "items[2].author: expected an object with a name" in problems
    assert "items[3].title: expected a string, got int" in problems


def test_json_feed_1_0_author_and_bare_version() -> None:
    feed = parse_json_feed(
        json.dumps({"version": "1.0", "title": "t", "author": {"name": "Old Style"}, "items": []}).encode()
    )
    assert feed.version == "1.0" and feed.authors == ("Old Style",)
    assert any("should be the URL" in p for p in feed.problems)
    with pytest.raises(JsonFeedError):
        parse_json_feed(b'{"version": "2.0", "items": []}')


# --- body model -------------------------------------------------------------------------------------


def test_html_blocks_reading_order_and_cleanliness() -> None:
    html = """<div><p>Intro with <a href="#">a link</a> &amp; an entity&#8212;dash.</p>
      <blockquote><p>Quoted paragraph.</p></blockquote>
      <ul><li>First point</li><li>Second point</li></ul>
      <h3>Heading <small>with aside</small></h3>
      Loose text between blocks.
      <table><tr><td>cell</td></tr></table>
      <p>Escaped markup stays text: &lt;p&gt; and I &lt;3 it.</p></div>"""
    assert [(b.kind, b.text) for b in html_blocks(html)] == [
        ("p", "Intro with a link & an entity—dash."),
        ("p", "Quoted paragraph."),
        ("p", "First point"),
        ("p", "Second point"),
        ("h", "Heading with aside"),
        ("p", "Loose text between blocks."),
        ("p", "cell"),
        ("p", "Escaped markup stays text: <p> and I <3 it."),
    ]
