"""Campaign tags on article links: opt-in, kept out of skipped domains, never clobbering the
publisher's own query parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from renderdata import make_article, make_issue, make_settings

from digest.config import LinkSettings
from digest.errors import ConfigError
from digest.render.issue import render_issue
from digest.render.links import tag_url

ON = LinkSettings(utm=True, utm_source="weekly", utm_content="pos-{position}", skip_domains=["partner.example.com"])


def test_tagging_is_off_by_default() -> None:
    assert (
        tag_url("https://news.example.org/a?x=1", LinkSettings(), issue="2025-W33") == "https://news.example.org/a?x=1"
    )


def test_tags_are_appended_and_existing_parameters_kept_byte_for_byte() -> None:
    url = "https://news.example.org/a?q=caf%C3%A9+au+lait&empty=&x=1&x=2#comments"
    assert tag_url(url, ON, issue="2025-W33", position=3) == (
        "https://news.example.org/a?q=caf%C3%A9+au+lait&empty=&x=1&x=2"
        "&utm_source=weekly&utm_medium=email&utm_campaign=2025-W33&utm_content=pos-3#comments"
    )
    assert tag_url("https://news.example.org/", ON, issue="W 1", position=1) == (
        "https://news.example.org/?utm_source=weekly&utm_medium=email&utm_campaign=W+1&utm_content=pos-1"
    )


def test_the_publishers_own_utm_values_win() -> None:
    url = "https://news.example.org/a?utm_source=twitter&utm_campaign=launch"
    assert tag_url(url, ON, issue="2025-W33", position=1) == url + "&utm_medium=email&utm_content=pos-1"


@pytest.mark.parametrize("host", ["partner.example.com", "www.partner.example.com", "PARTNER.example.com."])
def test_skipped_domains_and_their_subdomains_stay_untagged(host: str) -> None:
    assert tag_url(f"https://{host}/story", ON, issue="x") == f"https://{host}/story"


def test_a_lookalike_domain_is_not_skipped() -> None:
    assert "utm_source" in tag_url("https://notpartner.example.com/story", ON, issue="x")


def test_issue_links_are_tagged_but_unsubscribe_and_archive_are_not(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, {"links": {"utm": True, "skip_domains": ["other.example.net"]}})
    issue = make_issue([make_article(1), make_article(2, url="https://other.example.net/x")])
    rendered = render_issue(issue, settings)
    tagged = "https://news.example.org/articles/1?utm_source=newsletter&amp;utm_medium=email&amp;utm_campaign=2025-W33"
    assert rendered.html.count(f'href="{tagged}"') == 2  # title and button
    assert 'href="https://other.example.net/x"' in rendered.html
    assert (
        "Read more: https://news.example.org/articles/1?utm_source=newsletter&utm_medium=email&utm_campaign=2025-W33"
        in rendered.text
    )
    assert "/unsubscribe?token=" in rendered.html and "unsubscribe?token=DIGEST-RECIPIENT-TOKEN&" not in rendered.html
    assert 'href="https://news.example.org/archive/2025-W33"' in rendered.html


def test_unknown_placeholder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"links\.utm_campaign: unknown placeholder or stray brace in '\{week\}'"):
        make_settings(tmp_path, {"links": {"utm_campaign": "{week}"}})
    with pytest.raises(ConfigError, match=r"links\.tracking_pixel_url: expected a URL starting with https://"):
        make_settings(tmp_path, {"links": {"tracking_pixel_url": "http://t.example.org/p.gif"}})
