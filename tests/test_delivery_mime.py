"""The per-recipient fast path against the reference message (build_message): both parsed, the
same headers and the same decoded parts; and the quoted-printable it writes stays valid."""

from __future__ import annotations

import email
import random
import re
from datetime import datetime, timezone
from email import policy

import pytest

from digest.config import NewsletterSettings
from digest.delivery.mime import MessageTemplate, build_message, qp_piece, smtp_data
from digest.models import EMAIL_MARK, TOKEN_MARK, RenderedIssue

NL = NewsletterSettings(
    title="Tëst Weekly — news",
    sender="Tëst Weekly <digest@news.example.org>",
    reply_to="editor@news.example.org",
    site_url="https://news.example.org",
    postal_address="1 Test Street",
)
# An unsubscribe page of its own that already carries a query: the token joins it with "&".
NL_OWN_UNSUBSCRIBE = NL.model_copy(update={"unsubscribe_url": "https://lists.example.org/leave?list=weekly"})
NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)


def _issue(rng: random.Random) -> RenderedIssue:
    words = ["lorem", "ipsum", "dolor", "café", "naïve", "—", "€5", "=", "a=b", " ", "\t", ".", "From", "x" * 90, "<b>"]
    words += [".", ".dot", "..", "\n.", "\n.x"]  # lines that start with a dot, which SMTP DATA stuffs
    marks = [TOKEN_MARK, EMAIL_MARK]

    def body(lines: int) -> str:
        out = []
        for _ in range(lines):
            parts = [rng.choice(words + marks if rng.random() < 0.2 else words) for _ in range(rng.randint(0, 40))]
            line = " ".join(parts)
            if rng.random() < 0.1:
                line += "  "  # trailing white space must be encoded
            out.append(line)
        return "\n".join(out)

    text = body(60) + f"\nUnsubscribe: https://news.example.org/unsubscribe?token={TOKEN_MARK}\n"
    html = f'<p>{body(40)}</p>\n<a href="https://news.example.org/unsubscribe?token={TOKEN_MARK}">out</a>{EMAIL_MARK}'
    return RenderedIssue(key="2025-W33", subject="Wöchentlich: the week’s news", preheader="p", html=html, text=text)


def _parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


@pytest.mark.parametrize("nl", [NL, NL_OWN_UNSUBSCRIBE], ids=["site", "own-unsubscribe-page"])
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("to", ["ana@example.org", "o'brien&co@example.org", "x" * 60 + "@example.org"])
def test_fast_path_equals_the_reference_message(seed: int, to: str, nl: NewsletterSettings) -> None:
    rng = random.Random(seed)
    rendered = _issue(rng)
    token = "".join(
        rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_.") for _ in range(rng.randint(10, 140))
    )
    template = MessageTemplate(rendered, nl)
    mid = template.new_message_id()
    fast_raw = template.render(to=to, token=token, date=NOW, message_id=mid)
    ref_msg = build_message(rendered, nl, to=to, token=token, now=NOW)
    ref_msg.replace_header("Message-ID", mid)
    fast, ref = _parsed(fast_raw), _parsed(ref_msg.as_bytes())

    assert list(fast.keys()) == list(ref.keys())
    for name in ref.keys():
        if name == "Content-Type":
            assert fast.get_content_type() == ref.get_content_type() == "multipart/alternative"
        else:
            assert str(fast[name]).strip() == str(ref[name]).strip(), name
    fast_parts, ref_parts = list(fast.iter_parts()), list(ref.iter_parts())
    assert len(fast_parts) == len(ref_parts) == 2
    for f, r in zip(fast_parts, ref_parts):
        assert dict(f.items()) == dict(r.items())
        assert f.get_content() == r.get_content()
    assert fast.defects == [] and all(p.defects == [] for p in fast_parts)
    assert f"{nl.unsubscribe_base}{'&' if '?' in nl.unsubscribe_base else '?'}token=" in str(fast["List-Unsubscribe"])

    assert b"\n" not in fast_raw.replace(b"\r\n", b"")  # CRLF only
    encoded = [p.get_payload().encode("ascii") for p in fast_parts]
    lines = [line for e in encoded for line in e.splitlines()]
    assert max(len(line) for line in lines) <= 76
    for line in lines:
        assert not line.endswith((b" ", b"\t")), line  # RFC 2045 rule 3
        assert re.fullmatch(rb"[\x21-\x7e \t]*", line), line
        assert not re.search(rb"=(?![0-9A-F]{2}|$)", line), line  # every "=" escapes or soft-breaks


def test_qp_piece_round_trips_and_soft_breaks_its_end() -> None:
    import quopri

    piece = "é" * 100 + " end "
    enc = qp_piece(piece)
    assert enc.endswith(b"=\r\n")
    assert quopri.decodestring(enc.replace(b"\r\n", b"\n")).decode() == piece
    assert all(len(line) <= 76 for line in enc.split(b"\r\n"))
    assert qp_piece("line  \n") == b"line =20\r\n"


def test_fast_path_is_the_message_the_smtp_backend_sends(tmp_path) -> None:
    """The backends send exactly the template's bytes (OutgoingMessage.as_bytes)."""
    from digest.delivery.base import OutgoingMessage

    template = MessageTemplate(_issue(random.Random(1)), NL)
    m = OutgoingMessage("ana@example.org", template, "tok", "<1@news.example.org>", NOW)
    assert m.as_bytes() == template.render(
        to="ana@example.org", token="tok", date=NOW, message_id="<1@news.example.org>"
    )
    assert m.unsubscribe_url == "https://news.example.org/unsubscribe?token=tok"


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    ("to", "name"),
    [
        ("ana@example.org", None),
        (".dot@example.org", ".Dot"),  # a value that starts a line with a dot
        ("x" * 60 + "@example.org", ".\n.."),
        ("josé@exämple.org", "Zoë"),
    ],
)
def test_the_smtp_fast_path_equals_the_stuffed_message(seed: int, to: str, name: str | None) -> None:
    """render_for_smtp stuffs only the recipient's pieces (the rest was stuffed once), so it must
    give exactly what stuffing the whole message gives: the bytes DATA carries."""
    rng = random.Random(seed)
    nl = NL.model_copy(update={"name_fallback": ".friend"}) if seed % 2 else NL
    template = MessageTemplate(_issue(rng), nl)
    args = {"to": to, "token": "tok-" + str(seed), "date": NOW, "message_id": "<1@news.example.org>", "name": name}
    data = template.render_for_smtp(**args)
    assert data == smtp_data(template.render(**args))
    assert data.endswith(b"\r\n.\r\n")
    assert b"\r\n.\r\n" not in data[:-3]  # no line of the message ends DATA early


def test_smtp_data_stuffs_every_line_that_starts_with_a_dot() -> None:
    assert smtp_data(b".a\r\nb\r\n..c\r\n.\r\n") == b"..a\r\nb\r\n...c\r\n..\r\n.\r\n"
    assert smtp_data(b"plain\r\nend.\r\n") == b"plain\r\nend.\r\n.\r\n"
