"""Filling one recipient into the rendered issue: only their own parts differ, and the text twin
carries what the HTML carries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from renderdata import golden_issue, make_settings

from digest.render.issue import render_issue


@pytest.fixture
def rendered(tmp_path: Path):
    return render_issue(golden_issue(), make_settings(tmp_path))


def test_recipients_differ_only_in_their_own_parts(rendered) -> None:
    a_html, a_text = rendered.personalise(email="ann@example.org", token="TOKEN-ANN")
    b_html, b_text = rendered.personalise(email="bob@example.org", token="TOKEN-BOB")
    assert a_html.replace("ann@example.org", "X").replace("TOKEN-ANN", "T") == b_html.replace(
        "bob@example.org", "X"
    ).replace("TOKEN-BOB", "T")
    assert a_text.replace("ann@example.org", "X").replace("TOKEN-ANN", "T") == b_text.replace(
        "bob@example.org", "X"
    ).replace("TOKEN-BOB", "T")
    # An address is escaped where it lands in HTML.
    html, text = rendered.personalise(email="o'neil&co@example.org", token="t")
    assert "o&#x27;neil&amp;co@example.org" in html and "o'neil&co@example.org" in text


def test_text_twin_carries_what_the_html_carries(rendered) -> None:
    html, text = rendered.personalise(email="a@example.org", token="t")
    words = lambda s: set(re.findall(r"\w{5,}", s.lower()))  # noqa: E731 - the check-email measure
    body = html.split("<body", 1)[1].split(">", 1)[1]
    html_words = words(re.sub(r"<[^>]+>", " ", body))
    share = len(html_words & words(text)) / len(html_words)
    assert share > 0.9, sorted(html_words - words(text))
    for entry in golden_issue().entries:
        assert entry.teaser.text in text.replace("\n", " ")
    # Plain text reads as text: no markup, no entities, lines wrapped for reading.
    assert not re.search(r"<[a-z/][^>]*>|&[a-z]+;|&#", text.replace("<a film in four parts>", ""))
    assert all(len(line) <= 72 or line.split()[-1].startswith("https://") for line in text.splitlines())
