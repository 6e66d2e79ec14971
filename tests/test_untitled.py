"""Articles without a title (wire copy, micro-blog posts): read, teased and shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from conftest import shared_path
from renderdata import make_article, make_issue, make_settings

from digest.config import SourceSettings
from digest.models import Block
from digest.render.issue import render_issue
from digest.sources.folder import FolderSource, read_article_file
from digest.teaser import make_teaser

UTC = ZoneInfo("UTC")
LEAD = (
    "The harbour authority voted on Tuesday to close the north quay to cargo ships from March, ending "
    "two centuries of trade there. Fishing boats may still moor."
)


def _digest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return subprocess.run(
        [sys.executable, "-m", "digest", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_a_folder_file_without_a_title_is_read_and_teased(tmp_path: Path) -> None:
    (tmp_path / "wire.md").write_text(f"---\ndate: 2025-08-01\n---\n\n{LEAD}\n\nMore text follows here.\n")
    result = FolderSource(SourceSettings(name="wire", kind="folder", path=tmp_path), tz=UTC).collect(
        datetime(2025, 8, 2, tzinfo=UTC)
    )
    assert result.problems == ()
    (article,) = result.articles
    assert article.title == ""
    # The teaser keeps the lead's first sentence (it is no headline's repeat).
    assert make_teaser(article, 220).text.startswith("The harbour authority voted on Tuesday")
    assert (
        article.display_title == "The harbour authority voted on Tuesday to close the north quay to cargo ships from…"
    )


def test_display_title_falls_back_to_the_source_and_date() -> None:
    a = make_article(1, title="", body=())
    assert a.display_title == f"test, {a.published:%d %B %Y}"
    assert make_article(2, title="", body=(Block("Short lead. Second."),)).display_title == "Short lead."
    assert make_article(3).display_title == make_article(3).title


def test_the_email_shows_an_untitled_article_under_its_derived_title(tmp_path: Path) -> None:
    untitled = make_article(1, title="", body=(Block(LEAD),))
    rendered = render_issue(make_issue([untitled, make_article(2)]), make_settings(tmp_path))
    derived = untitled.display_title
    assert derived in " ".join(rendered.text.split()) and derived in rendered.html
    assert "Untitled" not in rendered.text and "Untitled" not in rendered.html
    # The subject names the derived title too, cut to keep the subject short before "and 1 more".
    lead_in_subject = rendered.subject.removeprefix("The Test Weekly: ").removesuffix("… and 1 more")
    assert len(lead_in_subject) > 20 and derived.startswith(lead_in_subject)


def test_digest_teaser_prints_a_teaser_for_every_corpus_file_with_and_without_its_title(tmp_path: Path) -> None:
    corpus = shared_path("corpus", "teasers", "articles")
    files = sorted(corpus.rglob("*.md"))
    assert len(files) > 100
    untitled = []
    for n, f in enumerate(files):
        text = f.read_text(encoding="utf-8")
        stripped = re.sub(r"(?m)^title:.*\n", "", text, count=1)
        assert stripped != text, f
        copy = tmp_path / f"{n:04d}.md"
        copy.write_text(stripped, encoding="utf-8")
        untitled.append(copy)
    for batch in (files, untitled):
        proc = _digest("teaser", *map(str, batch), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = proc.stdout.splitlines()
        assert len(lines) == len(batch), proc.stderr[-2000:]
        assert all(line.strip() for line in lines), [str(f) for f, line in zip(batch, lines) if not line.strip()]
        assert proc.stderr == ""


def test_read_article_file_takes_an_untitled_html_page(tmp_path: Path) -> None:
    page = tmp_path / "p.html"
    page.write_text(f"<html><body><article><p>{LEAD}</p><p>{LEAD}</p></article></body></html>")
    article = read_article_file(page, source="files", tz=timezone.utc, require_date=False)
    assert article.title == "" and article.display_title.startswith("The harbour authority")
