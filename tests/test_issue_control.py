"""The editor's control over one issue: pin, drop, order, subject and note, stored per issue and
used by `digest build` and the send; the default subject's length and lead."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from digest.config import load_config
from digest.models import IssueEdits
from digest.pipeline import due_slot, run_once
from digest.render.issue import render_issue
from digest.store import Store
from digest.store.schema import SCHEMA_VERSION
from tests.conftest import write_article
from tests.renderdata import make_article, make_issue, make_settings
from tests.schemas import database_at_version

AS_OF = "2025-08-11T09:00"
NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)


def digest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return subprocess.run(
        [sys.executable, "-m", "digest", "--config", "digest.toml", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def four_articles(tmp_path: Path) -> None:
    for day in (5, 6, 7, 8):
        write_article(
            tmp_path / "content",
            f"a{day}.md",
            title=f"Story of the {day}th",
            date=f"2025-08-0{day}T10:00:00+01:00",
            body=f"What happened on the {day}th of August, told at some length for the teaser.",
            extra=f"url: https://news.example.org/{day}\n",
        )


def titles_in(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("Story of the")]


@pytest.fixture
def folder(write_config: Callable[..., Path], tmp_path: Path) -> Path:
    write_config()
    four_articles(tmp_path)
    assert digest("build", "--as-of", AS_OF, "--out", "first", cwd=tmp_path).returncode == 0  # ingests
    return tmp_path


def test_pin_drop_order_subject_and_note_from_the_cli_shape_build_and_send(folder: Path) -> None:
    def ok(*args: str) -> str:
        proc = digest("issue", *args, "--as-of", AS_OF, cwd=folder)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    shown = ok("show")
    assert [line.split(". ", 1)[1].split("  [")[0] for line in shown.splitlines() if ". " in line] == [
        "Story of the 8th",
        "Story of the 7th",
        "Story of the 6th",
        "Story of the 5th",
    ]
    ok("pin", "https://news.example.org/5")  # by URL
    ok("drop", "2")  # by number in the issue as it stands: the 8th
    ok("order", "3", "2")  # now: 5th (pinned), 7th, 6th → put the 6th before the 7th
    ok("subject", "The Test Weekly: our pick of the week")
    out = ok("note", "Back to weekly issues from September.\n\nThanks for reading.")
    assert "left out: Story of the 8th" in out and "(pinned)" in out

    build = digest("build", "--as-of", AS_OF, "--no-ingest", "--out", "out", cwd=folder)
    assert build.returncode == 0, build.stderr
    assert "3 articles; subject: The Test Weekly: our pick of the week" in build.stdout
    text = (folder / "out" / "issue.txt").read_text()
    assert titles_in(text) == ["Story of the 5th", "Story of the 6th", "Story of the 7th"]
    assert "Back to weekly issues from September." in text and "Thanks for reading." in text
    assert "Back to weekly issues from September." in (folder / "out" / "issue.html").read_text()

    send = digest("send", "--as-of", AS_OF, cwd=folder)
    assert send.returncode == 0, send.stderr
    eml = next((folder / "outbox").rglob("*.eml"))
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "The Test Weekly: our pick of the week"
    plain = next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_content()
    assert titles_in(plain) == ["Story of the 5th", "Story of the 6th", "Story of the 7th"]

    # Once the issue has gone out, its choices are fixed.
    late = digest("issue", "subject", "Too late", "--as-of", AS_OF, cwd=folder)
    assert late.returncode != 0
    assert late.stderr.strip() == "digest: error: issue 2025-W33 was already sent; its articles and subject are fixed"


def test_an_unknown_article_is_one_line_naming_what_to_give(folder: Path) -> None:
    for ref in ("99", "https://elsewhere.example.org/x"):
        proc = digest("issue", "pin", ref, "--as-of", AS_OF, cwd=folder)
        assert proc.returncode != 0
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert "digest issue show" in proc.stderr
    blank = digest("issue", "subject", "  ", "--as-of", AS_OF, cwd=folder)
    assert blank.returncode != 0 and "--clear" in blank.stderr


def test_the_scheduled_run_uses_the_stored_choices(folder: Path) -> None:
    settings = load_config(folder / "digest.toml")
    with Store(settings.state_url) as store:
        slot = due_slot(settings, NOW)
        ids = {a.url: a.id for a in store.articles.all()}
        store.edits.save(
            IssueEdits(
                slot.key,
                pinned=ids["https://news.example.org/6"],
                dropped=(ids["https://news.example.org/7"],),
                subject="Chosen",
            ),
            now=NOW,
        )
        _, report = run_once(settings, store, as_of=NOW, now=NOW, read_sources=False)
        assert report.outcome == "sent", report.message
        row = store.issues.get(slot.key)
        assert row is not None and row.subject == "Chosen"
        assert titles_in(row.text or "") == ["Story of the 6th", "Story of the 8th", "Story of the 5th"]


def test_the_default_subject_stays_short_and_names_a_story(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    long_title = "An extraordinarily long headline that goes on and on about the harbour festival and its many stalls"
    note = make_article(0, title="Sponsored by the Harbour Bakery", url=None, date_is_first_seen=True)
    story = make_article(1, title=long_title, url="https://news.example.org/harbour")
    other = make_article(2)
    subject = render_issue(make_issue([note, story, other]), settings).subject
    head, _, more = subject.rpartition(" and ")
    assert more == "2 more"
    assert head.startswith("The Test Weekly: An extraordinarily long headline")
    assert len(head) <= 78
    assert "Sponsored" not in subject
    # A pinned article leads the subject even when it is not first.
    pinned = dataclasses.replace(make_issue([note, story, other]), pinned=other.id)
    assert render_issue(pinned, settings).subject == f"The Test Weekly: {other.title} and 2 more"


def test_a_version_2_database_gains_the_issue_choices_table(tmp_path: Path) -> None:
    url = database_at_version(tmp_path / "v2.sqlite3", 2)
    with Store(url) as store:
        assert store.meta.get("schema_version") == str(SCHEMA_VERSION)
        store.edits.save(IssueEdits("2025-W33", dropped=("a", "b"), order=("c",), note="Hi"), now=NOW)
    with Store(url) as again:
        assert again.edits.get("2025-W33") == IssueEdits("2025-W33", dropped=("a", "b"), order=("c",), note="Hi")
        again.edits.save(IssueEdits("2025-W33"), now=NOW)  # empty choices: the row goes
        assert again.edits.keys() == []
