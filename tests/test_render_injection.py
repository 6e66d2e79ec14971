"""Hostile article fields: markup is escaped, bad URLs are dropped, headers cannot be split, and
oversized text is clipped — in the HTML, the text twin, the subject and the finished message."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default
from html.parser import HTMLParser
from pathlib import Path

import pytest
from renderdata import entry_with_teaser, make_article, make_issue, make_settings

from digest.delivery.mime import build_message
from digest.models import Issue
from digest.render.issue import MAX_AUTHOR, MAX_SUBJECT, MAX_TEASER, MAX_TITLE, render_issue
from digest.render.links import safe_url

NOW = datetime(2025, 8, 11, 7, 0, tzinfo=timezone.utc)
SCRIPT = "<script>alert('x')</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
CRLF = "Line one\r\nBcc: victim@example.com\r\n\r\n<b>body</b>"
BAD_URLS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java\nscript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "//evil.example.com/x",
    "/relative/path",
    'https://news.example.org/a"><script>alert(1)</script>',
    "https://news.example.org/a\r\nSet-Cookie: x=1",
    "https://news.example.org/" + "a" * 10_000,
    "https:///no-host",
]


class _Tags(HTMLParser):
    """Every element and attribute the HTML really contains, as a browser's parser sees it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _visible(html: str) -> str:
    """The text a reader sees, and the alt texts a screen reader reads."""
    parser = _Tags()
    parser.feed(html)
    alts = [a.get("alt") or "" for t, a in parser.tags if t == "img"]
    return " ".join(" ".join(parser.text).split() + alts)


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def assert_markup_inert(html: str) -> None:
    tags = _tags(html)
    assert not [t for t, _ in tags if t in ("script", "iframe", "object", "embed", "form")]
    for tag, attrs in tags:
        handlers = [a for a in attrs if a.startswith("on")]
        assert not handlers, f"<{tag}> carries event handlers {handlers}"
        for name in ("href", "src"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("https://", "http://")), f"<{tag} {name}={value!r}>"
    images = [a for t, a in tags if t == "img"]
    assert all(a.get("src", "").startswith("https://") for a in images), images


def _render(tmp_path: Path, issue: Issue):
    return render_issue(issue, make_settings(tmp_path))


@pytest.mark.parametrize("payload", [SCRIPT, BREAKOUT, CRLF], ids=["script", "attribute-breakout", "crlf"])
@pytest.mark.parametrize("field", ["title", "author", "section", "image_alt", "teaser"])
def test_markup_in_text_fields_is_escaped(tmp_path: Path, field: str, payload: str) -> None:
    article = make_article(1, image="https://news.example.org/i.png", **({} if field == "teaser" else {field: payload}))
    issue = make_issue([article, make_article(2)])
    if field == "teaser":
        from html import escape

        issue = Issue(
            issue.key,
            issue.slot,
            issue.window_start,
            (entry_with_teaser(article, payload, escape(payload)), issue.entries[1]),
        )
    rendered = _render(tmp_path, issue)
    assert_markup_inert(rendered.html)
    # The text is still there for the reader, as text.
    shown = " ".join(payload.split()) if field != "teaser" else payload.split("\r\n")[0]
    assert shown in _visible(rendered.html)
    # Line breaks never survive into the text twin's one-line slots, so no line can pose as a header.
    for line in rendered.text.splitlines():
        assert not line.startswith("Bcc:")


@pytest.mark.parametrize("url", BAD_URLS)
def test_unsafe_urls_are_dropped(tmp_path: Path, url: str) -> None:
    assert safe_url(url) is None
    article = make_article(1, url=url, image=url)
    rendered = _render(tmp_path, make_issue([article]))
    assert_markup_inert(rendered.html)
    assert "Read more" not in rendered.html and "Read more" not in rendered.text
    assert "javascript" not in rendered.html.lower() and "javascript" not in rendered.text.lower()
    # The article itself is still there, just without a link.
    assert "Article 1: a headline" in rendered.html and "Article 1: a headline" in rendered.text


def test_good_urls_pass_unchanged() -> None:
    for url in ("https://news.example.org/a?x=1&y=2#top", "http://news.example.org/", "https://xn--caf-dma.example/é"):
        assert safe_url(url) == url


def test_subject_cannot_be_split(tmp_path: Path) -> None:
    title = "Big news\r\nBcc: victim@example.com\nX-Injected: yes\x00\x0b\x1c\u2028\u0085 end"
    rendered = _render(tmp_path, make_issue([make_article(1, title=title)]))
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    msg = build_message(
        rendered,
        make_settings(tmp_path).newsletter,
        to="reader@example.org",
        token="t",
        now=NOW,
        subject_prefix="[TEST]\r\nBcc: x@y ",
    )
    raw = msg.as_bytes()
    parsed = message_from_bytes(raw, policy=default)
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None
    assert parsed.get_all("Subject") == [parsed["Subject"]]
    subject = str(parsed["Subject"])
    assert subject.startswith("[TEST] Bcc: x@y The Test Weekly: Big news Bcc: victim@example.com X-Injected: yes")
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0] for line in header_block.split(b"\r\n") if line and not line[:1].isspace()]
    assert b"Bcc" not in names and b"X-Injected" not in names
    assert b"\x00" not in header_block and b"\x0b" not in header_block


def _longest_run(filler: str, text: str) -> int:
    return max((len(m) for m in re.findall(f"(?:{filler} ?)+", text)), default=0)


def test_ten_kilobytes_of_text_are_clipped(tmp_path: Path) -> None:
    def huge(word: str) -> str:
        return (f"{word} " * 2000)[:10_240]

    unbroken = "x" * 10_240
    article = make_article(
        1,
        title=huge("Tword"),
        author=huge("Aword"),
        section=unbroken,
        image_alt=huge("Iword"),
        image="https://news.example.org/i.png",
    )
    issue = make_issue([article])
    issue = Issue(
        issue.key, issue.slot, issue.window_start, (entry_with_teaser(article, huge("Sword"), huge("Sword")),)
    )
    rendered = _render(tmp_path, issue)
    assert len(rendered.subject) <= MAX_SUBJECT and rendered.subject.endswith("…")
    for part in (rendered.html, rendered.text):
        assert 0 < _longest_run("Tword", part) <= MAX_TITLE
        assert 0 < _longest_run("Aword", part) <= MAX_AUTHOR
        assert 0 < _longest_run("Sword", part) <= MAX_TEASER
        assert unbroken not in part
    assert 0 < _longest_run("Iword", rendered.html) <= MAX_TITLE
    assert len(rendered.html.encode()) < 40_000, "10 KB fields must not reach the e-mail whole"
    msg = build_message(rendered, make_settings(tmp_path).newsletter, to="reader@example.org", token="t", now=NOW)
    raw = msg.as_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
