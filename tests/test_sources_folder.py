from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import EXAMPLES, shared_path

from digest.config import SourceSettings
from digest.sources.folder import FolderSource, read_article_file
from digest.sources.markup import markdown_blocks
from digest.sources.textpage import parse_text_page

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    "name, headline_start, dek_start, when",
    [
        (
            "000_3f6863d6794a924e.txt",
            "A serialized music industry drama",
            "A sweeping, character-rich",
            date(2025, 7, 25),
        ),
        ("001_cb9bf2ec089501f1.txt", "Music-centered dramas", "Across film and television", date(2025, 8, 2)),
    ],
)
def test_shared_samples_read_cleanly(name: str, headline_start: str, dek_start: str, when: date) -> None:
    text = shared_path("samples", name).read_text(encoding="utf-8")
    page = parse_text_page(text)
    assert page.headline.startswith(headline_start)
    assert page.dek and page.dek.startswith(dek_start)
    assert page.date == when
    texts = [b.text for b in page.body]
    assert all(t != "ADVERTISEMENT" for t in texts)
    assert "Facebook X Reddit" not in texts
    assert "Related Articles" not in texts
    # Nothing of the related-articles tail leaks in: its teasers and dates stay out.
    assert not any(t.startswith(("July ", "August ")) and len(t) < 20 for t in texts)
    assert not any("evergreen guide" in t for t in texts[-2:])
    paragraphs = [b for b in page.body if b.kind == "p"]
    headings = [b for b in page.body if b.kind == "h"]
    assert paragraphs[0].text.startswith(("In the opening chapters", "When stories center on singers"))
    assert len(headings) >= 1
    assert all(len(h.text.split()) <= 22 for h in headings)
    assert all(len(p.text.split()) > 40 for p in paragraphs)


def test_text_page_tail_and_furniture(tmp_path: Path) -> None:
    raw = "\n".join(
        [
            "Headline here",
            "A dek that sets the piece up in one sentence.",
            "March 03, 2025",
            "Facebook X Reddit",
            "First paragraph " + "word " * 40 + "ends here.",
            "ADVERTISEMENT",
            "A short pull quote stands here.",
            "Second paragraph " + "word " * 40 + "ends.",
            "Sign up for our newsletter to get the best stories in your inbox.",
            "Related Articles",
            "Some other article's teaser.",
            "March 01, 2025",
        ]
    )
    page = parse_text_page(raw)
    assert [b.kind for b in page.body] == ["p", "h", "p"]
    assert page.body[1].text == "A short pull quote stands here."


def test_markdown_front_matter_and_inline_markup(tmp_path: Path) -> None:
    p = tmp_path / "a.md"
    p.write_text(
        '---\ntitle: "Hello: world"\ndate: 2025-08-06T10:30:00+01:00\nurl: https://x.example.org/a\n'
        "summary: An editor wrote this.\ntags: [film, review]\nsection: Film\n---\n\n"
        "First *paragraph* with a [link](https://x.example.org) and **bold**\ncontinued.\n\n## Sub head\n\n- item one\n- item two\n"
    )
    a = read_article_file(p, source="s", tz=LONDON)
    assert a.title == "Hello: world"
    assert a.published == datetime(2025, 8, 6, 10, 30, tzinfo=ZoneInfo("Europe/London")).astimezone(a.published.tzinfo)
    assert a.id == "https://x.example.org/a"
    assert a.summary == "An editor wrote this." and a.summary_by_editor
    assert a.tags == ("film", "review")
    assert [(b.kind, b.text) for b in a.body] == [
        ("p", "First paragraph with a link and bold continued."),
        ("h", "Sub head"),
        ("p", "item one"),
        ("p", "item two"),
    ]


def test_only_a_summary_an_editor_wrote_is_marked_as_the_editors(tmp_path: Path) -> None:
    bare = tmp_path / "bare.md"
    bare.write_text('---\ntitle: "No summary"\ndate: 2025-08-01\n---\n\nBody.\n')
    a = read_article_file(bare, source="s", tz=LONDON)
    assert a.summary is None and not a.summary_by_editor
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>A saved page</title>"
        '<meta name="description" content="The site wrote this description, not our editor.">'
        "</head><body><article><h1>A saved page</h1>"
        + "".join(
            f"<p>Paragraph {n} of the saved page, long enough to read as the article's text.</p>" for n in range(6)
        )
        + "</article></body></html>"
    )
    b = read_article_file(page, source="s", tz=LONDON, require_date=False)
    assert b.summary == "The site wrote this description, not our editor." and not b.summary_by_editor


def test_markdown_blocks_skip_code_fences() -> None:
    blocks = markdown_blocks("Para one.\n\n```\ncode\n```\n\nPara two.")
    assert [b.text for b in blocks] == ["Para one.", "Para two."]


def test_bad_file_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "good.md").write_text('---\ntitle: "Good"\ndate: 2025-08-01\n---\n\nBody.\n')
    (tmp_path / "bad.md").write_text("---\ntitle: [unclosed\n---\n\nBody.\n")
    src = FolderSource(SourceSettings(name="f", kind="folder", path=tmp_path), tz=LONDON)
    found = src.read(datetime(2025, 8, 2, tzinfo=LONDON))
    assert [a.title for a in found] == ["Good"]
    assert any("bad.md" in r.getMessage() and "YAML" in r.getMessage() for r in caplog.records)


def test_example_content_reads_in_both_formats() -> None:
    src = FolderSource(SourceSettings(name="ex", kind="folder", path=EXAMPLES), tz=LONDON)
    found = src.read(datetime(2025, 8, 11, tzinfo=LONDON))
    suffixes = {Path(a.origin or "").suffix for a in found}
    assert {".md", ".txt"} <= suffixes
    assert len(found) >= 12
    span = max(a.published for a in found) - min(a.published for a in found)
    assert span.days >= 14
    assert all(a.body and a.body[0].kind == "p" for a in found)


def test_html_file_in_a_folder_decodes_its_declared_charset(tmp_path: Path) -> None:
    para = (
        "Le café du coin a rouvert ses portes après des travaux qui ont duré tout l'été, et les habitués sont revenus. "
        * 3
    )
    html = (
        '<html><head><meta charset="iso-8859-1"><title>Réouverture du café</title>'
        '<link rel="canonical" href="https://www.journal.example/cafe/?utm_source=rss">'
        '<meta name="author" content="Zoé Martin"><meta property="article:published_time" content="2025-08-06T10:00:00+02:00">'
        f"</head><body><article><h1>Réouverture du café</h1><p>{para}</p><h2>Et après</h2><p>{para}</p></article></body></html>"
    )
    (tmp_path / "cafe.html").write_bytes(html.encode("iso-8859-1"))
    src = FolderSource(SourceSettings(name="f", kind="folder", path=tmp_path), tz=LONDON)
    (a,) = src.read(datetime(2025, 8, 11, tzinfo=LONDON))
    assert a.title == "Réouverture du café" and a.author == "Zoé Martin"
    assert a.id == "https://journal.example/cafe"
    assert a.published.date() == date(2025, 8, 6)
    assert a.body[0].kind == "p" and a.body[0].text.startswith("Le café du coin")
    assert ("h", "Et après") in [(b.kind, b.text) for b in a.body]
