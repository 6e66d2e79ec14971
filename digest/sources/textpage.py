"""The plain-text page format: a web page saved as text, one paragraph per line.

Line 1 is the headline, line 2 the dek (a one-sentence standfirst), line 3 the date. Page furniture
is mixed into the body — a share bar ("Facebook X Reddit"), "ADVERTISEMENT" lines, newsletter
prompts — and a "Related Articles" tail lists other articles; all of that is dropped. Short
single-sentence lines standing between paragraphs are pull-quote subheadings: kept, but marked as
headings so they never become the lead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from digest.models import Block
from digest.sources.text import parse_loose_date
from digest.text import clean_text

_SHARE_WORDS = {
    "facebook",
    "x",
    "twitter",
    "reddit",
    "linkedin",
    "pinterest",
    "email",
    "e-mail",
    "whatsapp",
    "share",
    "copy",
    "link",
    "print",
    "tumblr",
    "threads",
    "bluesky",
    "mastodon",
    "flipboard",
}
_ADVERT = re.compile(r"^(advertisement|advertisements|sponsored|ad|story continues below advertisement)$", re.I)
_TAIL = re.compile(
    r"^(related articles|related stories|related|more from .{1,40}|read more|recommended( for you)?|you may also like)$",
    re.I,
)
_PROMO = re.compile(r"^(sign up|subscribe)\b.{0,120}(newsletter|inbox|updates)|^get (our|the) .{0,60}newsletter", re.I)
_SENTENCE_END = re.compile(r"[.!?…][\"”’')\]]*$")
# A subheading in this format is one short sentence; body paragraphs run to several sentences.
_HEADING_MAX_WORDS = 22


@dataclass(frozen=True)
class TextPage:
    headline: str
    dek: str | None
    date: date | None
    body: tuple[Block, ...]


def is_share_bar(line: str) -> bool:
    words = line.lower().replace("|", " ").replace("·", " ").split()
    return bool(words) and len(words) <= 8 and all(w in _SHARE_WORDS for w in words)


def _is_heading(line: str) -> bool:
    words = line.split()
    if len(words) > _HEADING_MAX_WORDS:
        return False
    inner = line[:-1]
    # One sentence: no sentence break inside it.
    return not re.search(r"[.!?]\s+[A-Z“\"]", inner)


def parse_text_page(text: str) -> TextPage:
    """Parse the plain-text page format. Raises ValueError if the text has no headline."""
    lines = [clean_text(line) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError("the file is empty")
    headline = lines[0]
    rest = lines[1:]
    dek: str | None = None
    published: date | None = None
    # The dek and the date come before the body, in that order; either may be missing.
    for i, line in enumerate(rest[:3]):
        d = parse_loose_date(line)
        if d is not None:
            published = d
            if i >= 1 and dek is None:
                dek = rest[0]
            rest = rest[i + 1 :]
            break
    else:
        if rest and not is_share_bar(rest[0]):
            dek, rest = rest[0], rest[1:]
    body: list[Block] = []
    for line in rest:
        if _TAIL.match(line):
            break
        if is_share_bar(line) or _ADVERT.match(line) or _PROMO.search(line):
            continue
        body.append(Block(line, "h" if _is_heading(line) else "p"))
    # A heading needs a paragraph after it; a short last line is a closing paragraph.
    if body and body[-1].kind == "h":
        body[-1] = Block(body[-1].text, "p")
    return TextPage(headline=headline, dek=dek, date=published, body=tuple(body))
