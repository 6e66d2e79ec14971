"""Inputs that cannot hurt us: hostile or careless article files in a folder source."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import write_article

from digest.config import SourceSettings
from digest.sources.folder import FolderSource, read_article_file
from digest.sources.markup import split_front_matter

UTC = ZoneInfo("UTC")

# 9 anchors of 9 references each: under 512 bytes, 9**9 (387 million) strings once expanded.
ALIAS_BOMB = textwrap.dedent(
    """\
    ---
    title: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    summary: *i
    date: 2025-08-01
    ---
    A body.
    """
)


def test_the_alias_bomb_is_small() -> None:
    assert len(ALIAS_BOMB.encode()) < 512


@pytest.mark.parametrize(
    "front, complaint",
    [
        (ALIAS_BOMB, "expands to more than 10000 values"),
        ("---\na: &a [*a]\ntitle: x\n---\n", "nests deeper than 32 levels"),
        ("---\ntitle: " + "[" * 40 + "]" * 40 + "\n---\n", "nests deeper than 32 levels"),
        ("---\ntitle: " + "[" * 5000 + "]" * 5000 + "\n---\n", "nests"),
    ],
    ids=["alias-bomb", "self-reference", "deep", "very-deep"],
)
def test_front_matter_that_would_grow_or_nest_without_bound_is_refused(front: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        split_front_matter(front)


def test_ordinary_aliases_still_work() -> None:
    meta, body = split_front_matter("---\ntitle: &t Hello\nsummary: *t\ntags: [a, b]\n---\nBody")
    assert meta == {"title": "Hello", "summary": "Hello", "tags": ["a", "b"]} and body == "Body"


def test_a_file_over_the_size_cap_is_reported_and_not_read_whole(tmp_path: Path) -> None:
    write_article(tmp_path, "good.md", title="Good", date="2025-08-01", body="A body.")
    big = tmp_path / "big.md"
    big.write_text("---\ntitle: Big\ndate: 2025-08-01\n---\n\n" + "word " * 600_000)  # ~3 MB
    src = FolderSource(SourceSettings(name="f", kind="folder", path=tmp_path, max_file_mb=1), tz=UTC)
    result = src.collect(datetime(2025, 8, 2, tzinfo=UTC))
    assert [a.title for a in result.articles] == ["Good"]
    assert result.problems == (
        f"{big}: skipped: 2.9 MB, over the 1 MB limit; raise max_file_mb for this source if the file is really an article",
    )
    # The default cap (5 MB) reads it.
    default = FolderSource(SourceSettings(name="f", kind="folder", path=tmp_path), tz=UTC)
    assert len(default.collect(datetime(2025, 8, 2, tzinfo=UTC)).articles) == 2


def test_read_article_file_reads_no_more_than_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.md"
    big.write_bytes(b"x" * 3_000_000)
    reads: list[int] = []
    real_open = Path.open

    def spying_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        fh = real_open(self, *args, **kwargs)  # type: ignore[call-overload]
        real_read = fh.read

        def read(n: int = -1) -> bytes:
            reads.append(n)
            return real_read(n)

        fh.read = read
        return fh

    monkeypatch.setattr(Path, "open", spying_open)
    with pytest.raises(ValueError, match="over the 0.953674 MB limit"):
        read_article_file(big, source="f", tz=UTC, max_bytes=1_000_000)
    assert reads == [1_000_001]


def test_one_unreadable_file_does_not_stop_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_article(tmp_path, "a.md", title="A", date="2025-08-01", body="A body.")
    write_article(tmp_path, "b.md", title="B", date="2025-08-01", body="B body.")
    import digest.sources.folder as folder

    real = folder.markdown_blocks

    def exploding(text: str):  # type: ignore[no-untyped-def]
        if text.strip() == "A body.":
            raise MemoryError
        return real(text)

    monkeypatch.setattr(folder, "markdown_blocks", exploding)
    result = FolderSource(SourceSettings(name="f", kind="folder", path=tmp_path), tz=UTC).collect(
        datetime(2025, 8, 2, tzinfo=UTC)
    )
    assert [a.title for a in result.articles] == ["B"]
    assert len(result.problems) == 1 and "a.md: skipped: too large" in result.problems[0]


def test_ingest_of_a_folder_with_an_alias_bomb_under_a_memory_cap(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    cfg = write_config()
    (tmp_path / "content" / "bomb.md").write_text(ALIAS_BOMB)
    write_article(tmp_path / "content", "normal.md", title="Normal", date="2025-08-01", body="A normal body.")
    cap = 1536 * 1024 * 1024

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(cfg), "ingest"],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=limit,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "(1 new" in proc.stdout
    bomb_lines = [line for line in proc.stderr.splitlines() if "bomb.md" in line]
    assert len(bomb_lines) == 1 and "expands to more than 10000 values" in bomb_lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


# --- folder sources: base_url and url_pattern ---------------------------------------------------


def test_a_folder_file_without_a_url_links_under_the_base_url(tmp_path: Path) -> None:
    write_article(tmp_path / "notes", "2025-08-01-harbour-lights.md", title="Harbour", date="2025-08-01", body="A.")
    write_article(
        tmp_path, "own.md", title="Own", date="2025-08-01", body="B.", extra="url: https://elsewhere.example.org/own\n"
    )
    (tmp_path / "page.txt").write_text("A headline\nA dek.\nJuly 25, 2025\nA body paragraph that goes on.\n")
    settings = SourceSettings(
        name="f",
        kind="folder",
        path=tmp_path,
        base_url="https://news.example.org/blog",
        url_pattern="{year}/{month}/{slug}",
    )
    found = {a.title: a for a in FolderSource(settings, tz=UTC).collect(datetime(2025, 8, 2, tzinfo=UTC)).articles}
    assert found["Harbour"].url == "https://news.example.org/blog/2025/08/harbour-lights"
    assert found["Own"].url == "https://elsewhere.example.org/own"
    assert found["A headline"].url == "https://news.example.org/blog/2025/07/page"
    # The id stays the file's: adding base_url later does not make stored articles new.
    assert found["Harbour"].id == "file:f/notes/2025-08-01-harbour-lights.md"
    plain = SourceSettings(name="f", kind="folder", path=tmp_path, base_url="https://news.example.org/")
    found = {a.title: a for a in FolderSource(plain, tz=UTC).collect(datetime(2025, 8, 2, tzinfo=UTC)).articles}
    assert found["Harbour"].url == "https://news.example.org/notes/2025-08-01-harbour-lights"


@pytest.mark.parametrize(
    "extra, complaint",
    [
        ({"base_url": "https://"}, "base_url must be an http(s) URL with a host"),
        ({"base_url": 'https://a.example.org/"x'}, "base_url must be an http(s) URL with a host"),
        ({"base_url": "ftp://a.example.org/"}, "base_url must be an http(s) URL with a host"),
        ({"base_url": "https://a.example.org/", "url_pattern": "{title}"}, "unknown placeholder {title}"),
        ({"base_url": "https://a.example.org/", "url_pattern": "{slug"}, "url_pattern '{slug'"),
    ],
)
def test_bad_base_url_or_pattern_is_refused_at_load(tmp_path: Path, extra: dict[str, str], complaint: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=re.escape(complaint)):
        SourceSettings(name="f", kind="folder", path=tmp_path, **extra)  # type: ignore[arg-type]


def test_every_article_of_the_sample_newsletter_links_somewhere() -> None:
    from conftest import ROOT

    from digest.config import load_config
    from digest.sources.registry import source_from_settings

    settings = load_config(ROOT / "config" / "digest.toml")
    (cfg,) = settings.sources
    found = source_from_settings(cfg, tz=UTC).collect(datetime(2025, 8, 11, tzinfo=UTC)).articles
    assert found and all(a.url and a.url.startswith("https://review.example.org/") for a in found)


def test_a_local_feed_file_over_the_cap_fails_its_source_in_one_line(tmp_path: Path) -> None:
    from digest.errors import SourceError
    from digest.sources.feed import FeedSource

    big = tmp_path / "feed.xml"
    big.write_bytes(b"<rss><channel>" + b" " * 2_000_000 + b"</channel></rss>")
    src = FeedSource(SourceSettings(name="local", kind="feed", path=big, max_file_mb=1), tz=UTC)
    with pytest.raises(SourceError) as refused:
        src.collect(datetime(2025, 8, 2, tzinfo=UTC))
    assert str(refused.value) == (
        f"source 'local': {big} is larger than the 1 MB limit; raise max_file_mb for this source if it is really a feed or page"
    )
