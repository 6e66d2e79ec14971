"""The default theme and its overrides: structure for screen readers and dark mode, the optional
parts (logo, editor's note, tracking pixel), and errors that name the template at fault."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from renderdata import golden_issue, make_article, make_issue, make_settings

from digest.errors import RenderError
from digest.render.issue import TOKEN_MARK, render_issue


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    p = _Elements()
    p.feed(html)
    return p.elements


def test_accessible_structure(tmp_path: Path) -> None:
    html = render_issue(golden_issue(), make_settings(tmp_path)).html
    els = elements(html)
    html_tag = els[0]
    assert html_tag[0] == "html" and html_tag[1]["lang"] == "en"
    tables = [a for t, a in els if t == "table"]
    assert tables and all(a.get("role") == "presentation" for a in tables), "layout tables must be presentational"
    images = [a for t, a in els if t == "img"]
    assert [a["alt"] for a in images] == [
        "Boats decked with lanterns in the harbour at dusk",
        # No image_alt: the article's title stands in.
        'Review: "The Long Bridge" <a film in four parts>',
    ]
    # Headings: the newsletter's h1, named sections as h2 with their articles as h3 beneath,
    # articles outside a section as h2.
    heads = re.findall(r"<(h[1-3])[^>]*>(.*?)</h[1-3]>", html, re.S)
    outline = [(h, re.sub(r"<[^>]+>", "", t).strip()) for h, t in heads]
    assert outline == [
        ("h1", "The Test Weekly"),
        ("h2", "Events"),
        ("h3", "The harbour festival returns, bigger &amp; louder"),
        ("h3", "Review: &#34;The Long Bridge&#34; &lt;a film in four parts&gt;"),
        ("h2", "Food"),
        ("h3", "Café Ærø opens on the quay"),
        ("h2", "A letter from the archive"),
    ]
    # Every link's accessible name (its aria-label, else its text) says where it goes.
    links = re.findall(r"<a ([^>]*)>(.*?)</a>", html, re.S)
    names = [
        (m.group(1) if (m := re.search(r'aria-label="([^"]*)"', attrs)) else re.sub(r"<[^>]+>", "", t).strip())
        for attrs, t in links
    ]
    assert names and all(n not in ("", "here", "click here", "Read more") for n in names)
    # "Read more" is one light link, the same under every article; its name still names the article.
    more = [(attrs, t) for attrs, t in links if "Read more" in t]
    assert len(more) == 3 and {t for _, t in more} == {"Read more&nbsp;&rarr;"}
    assert 'aria-label="Read more: Café Ærø opens on the quay"' in html
    assert html.count("Café Ærø opens on the quay</a>") == 1  # the headline is shown once


def test_dark_mode_and_no_hidden_text(tmp_path: Path) -> None:
    html = render_issue(golden_issue(), make_settings(tmp_path)).html
    assert '<meta name="color-scheme" content="light dark"' in html
    assert '<meta name="supported-color-schemes" content="light dark"' in html
    assert "@media (prefers-color-scheme: dark)" in html
    # What spam filters and Gmail's sender guidelines treat as hidden text.
    compact = html.replace(" ", "").lower()
    for trick in ("display:none", "opacity:0", "visibility:hidden", "max-height:0", "mso-hide:all"):
        assert trick not in compact, trick
    assert not re.search(r"(?:left|top|text-indent):-\d", compact)
    # The preheader is the first thing a reader sees, not a hidden block.
    body = html.split("<body", 1)[1]
    first_text = re.sub(r"<[^>]+>", " ", body.split(">", 1)[1]).split()
    assert " ".join(first_text).startswith("Also in this issue: Review:")


def test_user_templates_win_one_file_at_a_time(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "partials").mkdir(parents=True)
    (mine / "subject.j2").write_text("{{ newsletter.title }} — {{ issue.date|date('%d.%m.%Y') }}")
    (mine / "partials" / "footer.mjml.j2").write_text(
        '<mj-section><mj-column><mj-text>Our own footer. <a href="{{ unsubscribe_url }}">Leave the list</a> '
        "{{ newsletter.postal_address }}</mj-text></mj-column></mj-section>"
    )
    rendered = render_issue(golden_issue(), make_settings(tmp_path, {"templates": {"path": str(mine)}}))
    assert rendered.subject == "The Test Weekly — 11.08.2025"
    assert "Our own footer." in rendered.html and "Leave the list" in rendered.html
    assert f"token={TOKEN_MARK}" in rendered.html
    # Everything not overridden is still the default theme.
    assert "You are receiving this because" not in rendered.html
    assert 'aria-label="Read more: Café Ærø opens on the quay"' in rendered.html
    assert "You are receiving this because" in rendered.text


def test_mjml_error_names_the_template(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "digest.mjml.j2").write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>x</mj-column></mj-body></mjml>"
    )
    with pytest.raises(RenderError, match=r"^template digest\.mjml\.j2: MJML did not compile: "):
        render_issue(golden_issue(), make_settings(tmp_path, {"templates": {"path": str(mine)}}))


def test_template_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "partials").mkdir(parents=True)
    (mine / "partials" / "article.mjml.j2").write_text("<mj-section>\n{% if entry.url %}\n</mj-section>\n")
    with pytest.raises(RenderError, match=r"partials/article\.mjml\.j2, line \d"):
        render_issue(golden_issue(), make_settings(tmp_path, {"templates": {"path": str(mine)}}))


def test_editor_note_from_a_file_and_logo(tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("Hello readers & friends.\n\nSecond <paragraph>.\n", encoding="utf-8")
    settings = make_settings(
        tmp_path,
        {
            "newsletter": {
                "editor_note_file": "note.md",
                "logo_url": "https://news.example.org/logo.png",
                "logo_width": 120,
            }
        },
    )
    assert settings.newsletter.editor_note_file == note
    rendered = render_issue(golden_issue(), settings)
    assert '<p style="margin:0;">Hello readers &amp; friends.</p>' in rendered.html
    assert "Second &lt;paragraph&gt;." in rendered.html
    assert "FROM THE EDITOR\n\nHello readers & friends.\n\nSecond <paragraph>.\n" in rendered.text
    logo = [a for t, a in elements(rendered.html) if t == "img" and "logo" in (a.get("src") or "")]
    assert logo and logo[0]["alt"] == "The Test Weekly" and logo[0]["width"] == "120"
    # The logo replaces the title text (as documented): the heading holds the image, not both.
    h1 = re.search(r"<h1[^>]*>(.*?)</h1>", rendered.html, re.S)
    assert h1 and "<img" in h1.group(1) and re.sub(r"<[^>]+>", "", h1.group(1)).strip() == ""


def test_unreadable_editor_note_is_one_clear_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, {"newsletter": {"editor_note_file": "missing.md"}})
    with pytest.raises(RenderError, match=r"newsletter\.editor_note_file: cannot read .*missing\.md: No such file"):
        render_issue(golden_issue(), settings)


def test_no_tracking_pixel_unless_enabled(tmp_path: Path) -> None:
    plain = render_issue(golden_issue(), make_settings(tmp_path)).html
    assert not [a for t, a in elements(plain) if t == "img" and a.get("width") == "1"]
    settings = make_settings(tmp_path, {"links": {"tracking_pixel_url": "https://t.example.org/open.gif"}})
    html = render_issue(golden_issue(), settings).personalise(email="a@example.org", token="TOK")[0]
    pixels = [a for t, a in elements(html) if t == "img" and a.get("width") == "1"]
    assert [p["src"] for p in pixels] == ["https://t.example.org/open.gif?issue=2025-W33&token=TOK"]
    assert pixels[0]["alt"] == ""


def test_single_article_issue(tmp_path: Path) -> None:
    rendered = render_issue(make_issue([make_article(1)]), make_settings(tmp_path))
    assert rendered.subject == "The Test Weekly: Article 1: a headline about the week's events"
    assert rendered.preheader.startswith("The lead paragraph of article 1")
    assert "1 article\n" in rendered.text


def test_a_theme_greets_each_subscriber_by_name_or_the_fallback(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "digest.txt.j2").write_text("Dear {{ recipient_name }},\n\n{{ issue.key }}\n")
    settings = make_settings(tmp_path, {"templates": {"path": str(mine)}, "newsletter": {"name_fallback": "friend"}})
    rendered = render_issue(golden_issue(), settings)
    named = rendered.personalise(email="a@example.org", token="t", name=settings.newsletter.recipient_name("Ann\nLee"))
    nameless = rendered.personalise(email="b@example.org", token="t", name=settings.newsletter.recipient_name(None))
    assert named[1].startswith("Dear Ann Lee,") and nameless[1].startswith("Dear friend,")
