"""The sample issue as a receiving mail system sees it: ../shared/tools/check-email (MIME shape,
headers, line lengths, size) and SpamAssassin with its shipped rules."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_path, write_sample_config

MAX_SCORE = 1.0
# Rules that would mean the message itself is badly built, whatever the score.
FORBIDDEN = re.compile(
    r"^(MIME_HTML_.*|MPART_ALT_DIFF.*|MISSING_.*|HTML_OFF_PAGE|FONT_INVIS.*|HTML_FONT_LOW_CONTRAST)$"
)


def test_sample_issue_passes_check_email_and_spamassassin(tmp_path: Path) -> None:
    check = shared_path("tools", "check-email")
    if not shutil.which("spamassassin"):
        pytest.skip("spamassassin is not installed (scripts/system-deps.sh installs it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    build = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(write_sample_config(tmp_path)), "build", "--as-of", "2025-08-11T09:00", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    eml = tmp_path / "out" / "issue.eml"
    proc = subprocess.run(["bash", str(check), str(eml)], capture_output=True, text=True, timeout=300)
    report = proc.stdout
    assert proc.returncode == 0, report + proc.stderr
    assert not [line for line in report.splitlines() if line.startswith("FAIL")], report
    summary = re.search(
        r"^summary: html_bytes=(\d+) longest_line=(\d+) parts=(\S+) links=(\d+) fails=(\d+)$", report, re.M
    )
    assert summary, report
    assert summary.group(3) == "text/plain+text/html" and summary.group(5) == "0"
    assert int(summary.group(2)) <= 78, "raw lines must stay within 78 characters"
    assert int(summary.group(1)) < 90_000
    score = re.search(r"^spamassassin .*score=(-?[0-9.]+)$", report, re.M)
    assert score, f"no SpamAssassin score in:\n{report}"
    rules = re.findall(r"^rule ([A-Z0-9_]+) ", report, re.M)
    assert not [r for r in rules if FORBIDDEN.match(r)], report
    assert float(score.group(1)) <= MAX_SCORE, report
