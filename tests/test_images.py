"""Images: relative addresses resolved and checked, natural width up to the column, warnings only
about images the e-mail shows."""

from __future__ import annotations

import struct
import zlib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import write_article
from renderdata import make_article, make_issue, make_settings

from digest.config import SourceSettings
from digest.render.issue import IMAGE_COLUMN_PX, render_issue
from digest.sources.folder import FolderSource
from digest.sources.images import file_image_width, image_width
from digest.web.preview import Preview

UTC = ZoneInfo("UTC")
NOW = datetime(2025, 8, 2, tzinfo=UTC)


def png(width: int, height: int = 10) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def jpeg(width: int, height: int = 10, exif: int = 0) -> bytes:
    app1 = b"\xff\xe1" + struct.pack(">H", exif + 2) + b"\0" * exif if exif else b""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app1 + b"\xff\xdb\x00\x04\x00\x00" + sof + b"\xff\xd9"


@pytest.mark.parametrize(
    "data, width",
    [
        (png(200), 200),
        (b"GIF89a" + struct.pack("<HH", 320, 10) + b"\0" * 8, 320),
        (jpeg(640), 640),
        (jpeg(1024, exif=30_000), 1024),
        (b"RIFF\0\0\0\0WEBPVP8X" + b"\0" * 8 + (479).to_bytes(3, "little") + b"\0\0\0", 480),
        (b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f" + struct.pack("<I", 299), 300),
        (b"not an image at all", None),
        (b"\xff\xd8\xff", None),
    ],
    ids=["png", "gif", "jpeg", "jpeg-exif", "webp-vp8x", "webp-vp8l", "text", "truncated-jpeg"],
)
def test_image_width_from_the_header(data: bytes, width: int | None) -> None:
    assert image_width(data) == width


def test_only_the_header_of_a_local_image_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(png(200) + b"\0" * 5_000_000)
    assert file_image_width(big) == 200


def test_relative_images_are_resolved_checked_and_measured(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "thumb.png").write_bytes(png(200))
    write_article(tmp_path, "local.md", title="Local", date="2025-08-01", body="A.", extra="image: img/thumb.png\n")
    write_article(
        tmp_path,
        "own.md",
        title="Own url",
        date="2025-08-01",
        body="B.",
        extra="url: https://elsewhere.example.org/posts/own\nimage: pic.jpg\nimage_width: 300\n",
    )
    write_article(tmp_path, "bad.md", title="Bad", date="2025-08-01", body="C.", extra="image: javascript:alert(1)\n")
    settings = SourceSettings(name="f", kind="folder", path=tmp_path, base_url="https://news.example.org/a/")
    result = FolderSource(settings, tz=UTC).collect(NOW)
    found = {a.title: a for a in result.articles}
    assert (found["Local"].image, found["Local"].image_width) == ("https://news.example.org/a/img/thumb.png", 200)
    assert (found["Own url"].image, found["Own url"].image_width) == (
        "https://elsewhere.example.org/posts/pic.jpg",
        300,
    )
    assert found["Bad"].image is None
    assert result.problems == (
        f"{tmp_path / 'bad.md'}: image 'javascript:alert(1)' is not an http(s) address; it is left out",
    )
    # Without a base_url the relative image has nowhere to point: dropped, and said so.
    plain = FolderSource(SourceSettings(name="f", kind="folder", path=tmp_path), tz=UTC).collect(NOW)
    assert {a.title: a.image for a in plain.articles}["Local"] is None
    assert (
        f"{tmp_path / 'local.md'}: image 'img/thumb.png' is relative and the article has no url; "
        "give the article a url or the source a base_url"
    ) in plain.problems


def test_an_image_is_shown_at_its_natural_width_up_to_the_column(tmp_path: Path) -> None:
    small = make_article(1, image="https://news.example.org/small.png", image_width=200, image_alt="A thumbnail")
    huge = make_article(2, image="https://news.example.org/huge.png", image_width=4000, image_alt="A banner")
    unknown = make_article(3, image="https://news.example.org/unknown.png", image_alt="Unknown")
    html = render_issue(make_issue([small, huge, unknown]), make_settings(tmp_path)).html

    def img_width(src: str) -> str:
        tag = html[html.index(f'src="{src}"') - 200 : html.index(f'src="{src}"') + 400]
        tag = tag[tag.rindex("<img") :]
        return tag[tag.index('width="') + 7 :].split('"', 1)[0]

    assert img_width("https://news.example.org/small.png") == "200"
    assert img_width("https://news.example.org/huge.png") == str(IMAGE_COLUMN_PX)
    assert img_width("https://news.example.org/unknown.png") == str(IMAGE_COLUMN_PX)


def test_the_preview_warns_only_about_images_in_the_email(write_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config()
    write_article(
        tmp_path / "content",
        "shown.md",
        title="Shown",
        date="2025-08-08T10:00:00+01:00",
        body="One.",
        extra="image: https://news.example.org/x.png\n",
    )
    write_article(
        tmp_path / "content",
        "dropped.md",
        title="Dropped",
        date="2025-08-08T11:00:00+01:00",
        body="Two.",
        extra="image: img/nowhere.png\n",
    )
    preview = Preview(cfg, as_of=datetime.fromisoformat("2025-08-11T09:00:00+01:00"))
    try:
        assert preview.refresh()
        warnings = [w for w in preview.snapshot.warnings if "alt text" in w]
        assert warnings == [
            "“Shown” has an image without alt text (image_alt); readers who cannot see it get the title instead"
        ]
    finally:
        preview.close()


def test_a_feed_images_declared_width_is_kept() -> None:
    from digest.sources.feed import feed_articles
    from digest.sources.feed_items import parse_feed

    rss = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>T</title><link>https://example.org/</link>
<item><title>With width</title><link>https://example.org/a</link><pubDate>Tue, 05 Aug 2025 08:00:00 GMT</pubDate>
<description>Text of a.</description><media:content url="https://cdn.example.org/a.jpg" medium="image" width="240"/></item>
<item><title>Without</title><link>https://example.org/b</link><pubDate>Tue, 05 Aug 2025 08:00:00 GMT</pubDate>
<description>Text of b.</description><media:content url="https://cdn.example.org/b.jpg" medium="image"/></item>
</channel></rss>"""
    found = feed_articles(parse_feed(rss, url="https://example.org/feed"), source="s", now=NOW)[0]
    assert [(a.image, a.image_width) for a in found] == [
        ("https://cdn.example.org/a.jpg", 240),
        ("https://cdn.example.org/b.jpg", None),
    ]
