"""The finished message (the reference builder): MIME shape, headers, quoted-printable lines."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from renderdata import golden_issue, make_settings

import digest.render.issue as issue_module
from digest.delivery.mime import MessageTemplate, build_message
from digest.render.issue import EMAIL_MARK, TOKEN_MARK, render_issue
from digest.tokens import TokenSigner

NOW = datetime(2025, 8, 11, 7, 0, tzinfo=timezone.utc)


@pytest.fixture
def settings(tmp_path: Path):
    return make_settings(tmp_path)


@pytest.fixture
def rendered(settings):
    return render_issue(golden_issue(), settings)


def _parse(raw: bytes):
    return message_from_bytes(raw, policy=default)


def test_message_shape_and_headers(rendered, settings) -> None:
    signer = TokenSigner("s3cret")
    token = signer.token("Reader@Example.org")
    raw = build_message(rendered, settings.newsletter, to="Reader@Example.org", token=token, now=NOW).as_bytes()
    msg = _parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for p in parts:
        assert p.get_content_charset() == "utf-8"
        assert p["Content-Transfer-Encoding"] == "quoted-printable"
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78
    assert all(b"\n" not in line for line in lines), "bare LF in the message"
    assert msg["From"] == "The Test Weekly <digest@news.example.org>"
    assert msg["From"].addresses[0].display_name == "The Test Weekly"
    assert msg["Reply-To"] == "editors@news.example.org"
    assert msg["To"] == "Reader@Example.org"
    assert msg["Date"].datetime == NOW
    assert re.fullmatch(r"<2025-W33\.[0-9a-f]{20}@news\.example\.org>", msg["Message-ID"])
    assert msg["Subject"] == "The Test Weekly: The harbour festival returns, bigger & louder and 3 more"
    assert msg["List-ID"] == "The Test Weekly <the-test-weekly.news.example.org>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    m = re.fullmatch(
        r"<https://news\.example\.org/unsubscribe\?token=([^>]+)>, <mailto:digest@news\.example\.org\?subject=unsubscribe>",
        msg["List-Unsubscribe"],
    )
    assert m and signer.email_for(m.group(1)) == "reader@example.org"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    # The same one-click URL in the header, the HTML footer and the text footer.
    url = f"https://news.example.org/unsubscribe?token={m.group(1)}"
    assert f'href="{url}"' in html and f"Unsubscribe: {url}" in text
    assert "Reader@Example.org" in html and "Reader@Example.org" in text
    assert TOKEN_MARK not in html + text and EMAIL_MARK not in html + text


def test_message_ids_are_unique(rendered, settings) -> None:
    ids = {
        build_message(rendered, settings.newsletter, to="a@example.org", token="t", now=NOW)["Message-ID"]
        for _ in range(50)
    }
    assert len(ids) == 50


def test_a_templates_message_ids_are_unique_and_well_formed_across_senders(rendered, settings) -> None:
    """Each sender (a worker, another machine) makes its own template for the issue: the ids of
    all of them never meet, and each is a msg-id (RFC 5322 §3.6.4) on the sender's domain."""
    ids = [MessageTemplate(rendered, settings.newsletter).new_message_id() for _ in range(200)]
    one = MessageTemplate(rendered, settings.newsletter)
    ids += [one.new_message_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    atext = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
    for mid in ids[::97]:
        assert re.fullmatch(rf"<{atext}(\.{atext})*@news\.example\.org>", mid), mid
        assert rendered.key.replace(" ", "") in mid


def test_unsubscribe_base_with_a_query_keeps_it(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        {
            "newsletter": {
                "unsubscribe_url": "https://lists.example.org/u?list=weekly",
                "unsubscribe_mailto": "leave@lists.example.org",
            }
        },
    )
    rendered = render_issue(golden_issue(), settings)
    msg = build_message(rendered, settings.newsletter, to="a@example.org", token="TOK", now=NOW)
    assert (
        msg["List-Unsubscribe"]
        == "<https://lists.example.org/u?list=weekly&token=TOK>, <mailto:leave@lists.example.org?subject=unsubscribe>"
    )
    assert (
        'href="https://lists.example.org/u?list=weekly&amp;token=TOK"'
        in rendered.personalise(email="a@example.org", token="TOK")[0]
    )


def test_mjml_is_compiled_once_per_issue_not_per_recipient(monkeypatch, settings) -> None:
    calls = []
    real = issue_module.compile_mjml

    def counting(source: str, *, template: str) -> str:
        calls.append(template)
        return real(source, template=template)

    monkeypatch.setattr(issue_module, "compile_mjml", counting)
    rendered = render_issue(golden_issue(), settings)
    for i in range(20):
        build_message(rendered, settings.newsletter, to=f"r{i}@example.org", token=f"t{i}", now=NOW)
    assert calls == ["digest.mjml.j2"]
