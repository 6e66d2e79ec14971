"""The size guard: Gmail clips messages whose HTML passes about 102 KB, hiding the footer with
its unsubscribe link. A warning above 90 KB, an error above 102 KB, or trailing articles dropped."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_article
from renderdata import make_article, make_issue, make_settings

from digest.config import RenderSettings
from digest.errors import ConfigError, RenderError
from digest.render.issue import fit_issue, html_bytes, render_issue

TWELVE = make_issue([make_article(n) for n in range(1, 13)])


def _size_of(tmp_path: Path, n: int) -> int:
    return html_bytes(render_issue(make_issue([make_article(i) for i in range(1, n + 1)]), make_settings(tmp_path)))


def test_defaults_follow_gmail() -> None:
    assert (RenderSettings().warn_html_bytes, RenderSettings().max_html_bytes) == (90_000, 102_000)


def test_warning_above_the_warn_limit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    size = _size_of(tmp_path, 12)
    settings = make_settings(tmp_path, {"render": {"warn_html_bytes": size - 1, "max_html_bytes": size}})
    with caplog.at_level(logging.WARNING, logger="digest.render.issue"):
        render_issue(TWELVE, settings)
    assert [r.getMessage() for r in caplog.records] == [
        f"issue 2025-W33: the HTML is {size:,} bytes, over render.warn_html_bytes = {size - 1:,}; Gmail clips messages over about 102 KB"
    ]
    caplog.clear()
    render_issue(TWELVE, make_settings(tmp_path, {"render": {"warn_html_bytes": size, "max_html_bytes": size}}))
    assert not caplog.records


def test_error_above_the_limit(tmp_path: Path) -> None:
    size = _size_of(tmp_path, 12)
    settings = make_settings(tmp_path, {"render": {"warn_html_bytes": 5000, "max_html_bytes": size - 1}})
    with pytest.raises(RenderError) as err:
        fit_issue(TWELVE, settings)
    assert str(err.value) == (
        f"issue 2025-W33: the HTML is {size:,} bytes, over render.max_html_bytes = {size - 1:,} (Gmail clips messages over "
        "about 102 KB); lower selection.max_articles or teaser.max_chars, or set render.drop_trailing_articles = true"
    )


def test_trailing_articles_dropped_to_fit(tmp_path: Path) -> None:
    limit = _size_of(tmp_path, 7) + 10
    settings = make_settings(
        tmp_path, {"render": {"warn_html_bytes": 5000, "max_html_bytes": limit, "drop_trailing_articles": True}}
    )
    issue, rendered = fit_issue(TWELVE, settings)
    assert [e.article.id for e in issue.entries] == [f"test:{n}" for n in range(1, 8)]
    assert [s.article.id for s in issue.skipped] == [f"test:{n}" for n in range(8, 13)]
    assert all("render.max_html_bytes" in s.reason for s in issue.skipped)
    assert html_bytes(rendered) <= limit
    assert "Article 7:" in rendered.html and "Article 8:" not in rendered.html and "Article 8:" not in rendered.text
    assert rendered.subject.endswith("and 6 more")
    # render_issue never changes the issue behind its caller's back: it refuses instead.
    with pytest.raises(RenderError):
        render_issue(TWELVE, settings)


def test_markers_count_at_their_longest(tmp_path: Path) -> None:
    rendered = render_issue(TWELVE, make_settings(tmp_path))
    assert html_bytes(rendered) > len(rendered.html.encode()) + 300


def test_warn_above_max_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"render: warn_html_bytes \(95000\) must not exceed max_html_bytes \(90000\)"
    ):
        make_settings(tmp_path, {"render": {"warn_html_bytes": 95_000, "max_html_bytes": 90_000}})


def _digest(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return subprocess.run([sys.executable, "-m", "digest", *args], capture_output=True, text=True, env=env, timeout=120)


def test_build_drops_articles_and_records_only_those_sent(write_config, tmp_path: Path) -> None:
    for n in range(6):
        write_article(
            tmp_path / "content",
            f"a{n}.md",
            title=f"Story {n}",
            date=f"2025-08-{n + 4:02d}T10:00:00+01:00",
            body=f"The lead of story {n} is long enough to matter. " * 3,
            extra=f"url: https://news.example.org/s{n}\n",
        )
    cfg = write_config("[render]\nwarn_html_bytes = 5000\nmax_html_bytes = 20000\ndrop_trailing_articles = true\n")
    proc = _digest("--config", str(cfg), "build", "--as-of", "2025-08-11T09:00", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    dropped = re.search(r"dropped (\d) trailing article\(s\) to fit the size limit: (.*)", proc.stderr)
    kept = re.search(r"issue 2025-W33: (\d) articles", proc.stdout)
    assert dropped and kept and int(dropped.group(1)) + int(kept.group(1)) == 6 and int(kept.group(1)) >= 2
    html = (tmp_path / "out" / "issue.html").read_text()
    assert len(html.encode()) <= 20000
    for title in dropped.group(2).split("; "):
        assert title not in html
    # The dropped articles were not recorded as sent: they stay available for the next issue.
    from digest.config import load_config
    from digest.store import Store

    assert Store(load_config(cfg).state_url).issues.carried_article_ids() == set()
    # Without the option the build stops with one clear line.
    cfg.write_text(cfg.read_text().replace("drop_trailing_articles = true", "drop_trailing_articles = false"))
    proc = _digest(
        "--config", str(cfg), "build", "--no-ingest", "--as-of", "2025-08-11T09:00", "--out", str(tmp_path / "out2")
    )
    assert proc.returncode == 1
    assert (
        proc.stderr.count("\n") == 1
        and "over render.max_html_bytes = 20,000" in proc.stderr
        and "Traceback" not in proc.stderr
    )
