"""`digest sources` and the build warning about sources that keep failing."""

from __future__ import annotations

from pathlib import Path

from conftest import write_article
from test_cli import digest

RSS = """<rss version="2.0"><channel><title>News</title><link>https://news.example.org/</link>
<item><title>From the feed</title><link>https://news.example.org/f1</link><pubDate>Fri, 08 Aug 2025 10:00:00 GMT</pubDate>
<description>The feed's story, told in a paragraph that is long enough.</description></item></channel></rss>"""


def test_sources_lists_health_and_build_warns_about_a_source_failing_runs_in_a_row(
    write_config, tmp_path: Path
) -> None:
    cfg = write_config('\n[[sources]]\nname = "news"\nkind = "feed"\npath = "news.xml"\n')
    write_article(tmp_path / "content", "one.md", title="One", date="2025-08-08", body="Lead one. More.")
    before = digest("--config", str(cfg), "sources")
    assert before.returncode == 0, before.stderr
    assert "news (feed): not read yet" in before.stdout

    for _run in range(3):
        proc = digest("--config", str(cfg), "ingest")
        # One failing source does not stop the other, and is one line naming the file.
        assert proc.returncode == 0, proc.stderr
        assert "articles: 1 article (" in proc.stdout
        errors = [line for line in proc.stderr.splitlines() if "news.xml" in line]
        assert len(errors) == 1 and "cannot read" in errors[0]

    listing = digest("--config", str(cfg), "sources")
    assert "articles (folder): ok" in listing.stdout
    assert "news (feed): FAILING, 3 runs in a row (digest build warns)" in listing.stdout
    assert f"location:      {tmp_path / 'news.xml'}" in listing.stdout
    assert "last success:  never" in listing.stdout and "last error:" in listing.stdout
    only_failing = digest("--config", str(cfg), "sources", "--failing")
    assert "news (feed)" in only_failing.stdout and "articles (folder)" not in only_failing.stdout

    build = digest(
        "--config", str(cfg), "build", "--no-ingest", "--as-of", "2025-08-11T09:00", "--out", str(tmp_path / "out")
    )
    assert build.returncode == 0, build.stderr
    assert "warning: source 'news' has failed 3 runs in a row" in build.stderr

    # Fixed: the next read succeeds, the count resets, and the warning goes.
    (tmp_path / "news.xml").write_text(RSS)
    fixed = digest("--config", str(cfg), "ingest")
    assert "news: 1 article (1 new, 0 updated)" in fixed.stdout
    assert "news (feed): ok" in digest("--config", str(cfg), "sources").stdout
    quiet = digest(
        "--config", str(cfg), "build", "--no-ingest", "--as-of", "2025-08-11T09:00", "--out", str(tmp_path / "out")
    )
    assert "has failed" not in quiet.stderr
