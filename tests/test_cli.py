from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, write_article

from digest.cli import cli

COMMANDS = [
    [],
    ["ingest"],
    ["build"],
    ["send"],
    ["run"],
    ["subscribers"],
    ["subscribers", "import"],
    ["subscribers", "list"],
    ["subscribers", "export"],
    ["subscribers", "add"],
    ["subscribers", "unsubscribe"],
    ["subscribers", "resubscribe"],
    ["subscribers", "remove"],
    ["subscribers", "show"],
]
COMMANDS += [["bounces"], ["bounces", "process"]]
COMMANDS += [["sources"], ["status"], ["schedule"], ["hold"], ["serve"], ["preview"], ["teaser"]]
COMMANDS += [["issue"], *(["issue", c] for c in ("show", "pin", "drop", "order", "subject", "note", "reset"))]
COMMANDS += [["init"], ["config"], ["config", "check"], ["templates"], ["templates", "list"], ["templates", "copy"]]


def digest(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "digest", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "digest")
def test_help_works_and_shows_an_example(command: list[str]) -> None:
    proc = digest(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: digest" in proc.stdout
    if command and command != ["subscribers"]:
        assert "Example" in proc.stdout and f"digest {' '.join(command)}" in proc.stdout


def test_every_command_is_covered() -> None:
    names = {" ".join(c) for c in COMMANDS}
    for name, cmd in cli.commands.items():
        assert name in names
        for sub in getattr(cmd, "commands", {}):
            assert f"{name} {sub}" in names


def test_build_on_sample_config_compiles_mjml(tmp_path: Path) -> None:
    cfg = tmp_path / "digest.toml"
    sample = (ROOT / "config" / "digest.toml").read_text()
    cfg.write_text(
        sample.replace('path = "../examples/content"', f'path = "{ROOT / "examples" / "content"}"')
        .replace('path = "../out/outbox"', 'path = "outbox"')
        .replace('csv = "subscribers.csv"', f'csv = "{ROOT / "config" / "subscribers.csv"}"')
    )
    proc = digest("--config", str(cfg), "build", "--as-of", "2025-08-11T09:00", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "out" / "issue.html").read_text()
    text = (tmp_path / "out" / "issue.txt").read_text()
    assert html.lower().startswith("<!doctype html>")
    assert "<mj-" not in html and "</mjml>" not in html
    assert "The Fenwright Prize shortlist" in html and "The Fenwright Prize shortlist" in text
    assert (tmp_path / "out" / "issue.eml").stat().st_size > 1000
    assert "issue 2025-W33" in proc.stdout


def test_run_twice_sends_once(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    write_article(tmp_path / "content", "one.md", title="One", date="2025-08-08", body="Lead one. More.")
    first = digest("--config", str(cfg), "run", "--as-of", "2025-08-11T09:00")
    assert first.returncode == 0, first.stderr
    assert "issue 2025-W33 sent: 3 delivered" in first.stdout
    emls = sorted(p.name for p in (tmp_path / "outbox" / "2025-W33").glob("*.eml"))
    assert emls == ["a@example.org.eml", "b@example.org.eml", "c@example.org.eml"]
    second = digest("--config", str(cfg), "run", "--as-of", "2025-08-11T10:00")
    assert second.returncode == 0, second.stderr
    assert "already sent (3 delivered); nothing to send" in second.stdout


def test_thin_week_is_skipped_and_says_why(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    cfg.write_text(cfg.read_text().replace("min_articles = 1", "min_articles = 2"))
    write_article(tmp_path / "content", "one.md", title="One", date="2025-08-08", body="Lead one.")
    proc = digest("--config", str(cfg), "run", "--as-of", "2025-08-11T09:00")
    assert proc.returncode == 0, proc.stderr
    assert "not sent: only 1 new article, fewer than selection.min_articles = 2" in proc.stdout
    assert not (tmp_path / "outbox").exists()


def test_subscribers_import_reports_bad_rows(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    csv = tmp_path / "more.csv"
    csv.write_text("email,name\nnew@example.org,New\nnot-an-address,X\na@example.org,\n")
    proc = digest("--config", str(cfg), "subscribers", "import", str(csv))
    assert proc.returncode == 0, proc.stderr
    assert "2 added, 0 already present, 0 kept out (left or removed), 1 rows with problems" in proc.stdout
    assert "more.csv:3: 'not-an-address'" in proc.stderr
    listed = digest("--config", str(cfg), "subscribers", "list")
    assert "new@example.org\tactive\tNew" in listed.stdout


def test_bad_as_of_is_one_line(write_config) -> None:
    cfg = write_config()
    proc = digest("--config", str(cfg), "build", "--as-of", "next tuesday")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--as-of" in proc.stderr
