"""What in an article body is not the story: the paragraphs a sub-editor passes over.

Bylines, datelines ("LONDON (Reuters) —"), photo captions and credits, "Updated" stamps, share and
subscribe prompts, advertisements, subheadings and pull quotes, editor's notes, navigation, one-word
lines and paragraphs that only repeat the headline are not the story.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from digest.models import Article
from digest.text import UNSPACED, clean_text, folded, words

_I = re.I
_MONTHS = (
    r"jan(?:uary|uar|vier|eiro)?|feb(?:ruary|ruar)?|févr(?:ier)?|mar(?:ch|s|z|zo)?|märz|apr(?:il|ile)?|avr(?:il)?|"
    r"may|mai|maggio|mayo|jun(?:e|i|io)?|juin|jul(?:y|i|io)?|juil(?:let)?|aug(?:ust)?|août|agosto|"
    r"sep(?:t|tember|tembre)?|oct(?:ober|obre)?|okt(?:ober)?|nov(?:ember|embre)?|dec(?:ember)?|dez(?:ember)?|déc(?:embre)?"
)
_DAYS = r"mon|tue|wed|thu|fri|sat|sun|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_DATE_WORDS = re.compile(
    rf"\b(?:{_MONTHS}|{_DAYS}|am|pm|a\.m|p\.m|gmt|utc|cet|cest|et|est|edt|pt|pst|pdt|bst|uhr|h)\b\.?", _I
)

_BYLINE = re.compile(
    r"^(?:written\s+|words\s+|reporting\s+|text\s+|story\s+)?(?:by|von|par|por|di|door|av|af|od|napsal[a]?|autor(?:in)?|author|text|texte)"
    r"\s*:?\s+\S",
    _I,
)
_STAMP = re.compile(
    r"^(?:last\s+)?(?:updated?|published|posted|modified|aktualisiert|veröffentlicht|erstellt|stand|"
    r"mis\s+à\s+jour|publié|actualizado|publicado|aggiornato|pubblicato|bijgewerkt|gepubliceerd|"
    r"aktualizováno|publikováno|zaktualizowano|opublikowano)\b",
    _I,
)
CREDIT = re.compile(
    r"^(?:photo(?:graph)?s?|foto(?:s|grafie)?|bild(?:er)?|image|picture|pictured|credit|crédit|illustration|"
    r"video|graphic|grafik|quelle|source|bildquelle|courtesy|above|top|left|right|main image)\b"
    r"|\b(?:getty\s+images|ap\s+photo|afp|reuters|dpa|keystone|shutterstock|imago|epa|picture[- ]alliance|"
    r"istock(?:photo)?|alamy|bloomberg|xinhua|ansa|apa|ctk|čtk)\s*\)?\s*$"
    r"|\b(?:photo|foto|bild|image|credit)\s*(?::|by|/|©)"
    r"|©|\bcourtesy of\b",
    _I,
)
_CAPTION_START = re.compile(
    r"^(?:in this (?:photo|picture|image|file photo|undated photo)|this (?:photo|picture|image)|pictured|file photo)\b",
    _I,
)
_PROMPT = re.compile(
    r"\b(?:share (?:this|on|via|article|story)|subscribe|sign up|sign in|log in|newsletter|follow us|"
    r"click here|tap here|read more|read also|read next|more from|see also|related(?: articles?| stories)?:|"
    r"continue reading|listen to (?:this|the) (?:article|story)|download (?:the|our) app|get the app|"
    r"already a subscriber|comments?\s*\(\d+\)|teilen|abonnieren|folgen sie|lesen sie (?:auch|mehr)|"
    r"mehr zum thema|zum thema|partager|abonnez|lire aussi|à lire aussi|suivez|compartir|suscríbete|"
    r"lee también|leggi anche|condividi|iscriviti|sdílet|přečtěte si|čtěte také|learn more|watch:|gallery:|"
    r"\d+\s+(?:photos|fotos|bilder|images)\b)",
    _I,
)
_AD = re.compile(
    r"^(?:advertisement|advertising|sponsored(?: content)?|anzeige|werbung|publicité|publicidad|pubblicità|"
    r"reklama|annonce|story continues below(?: advertisement)?|ad)$",
    _I,
)
_NOTE = re.compile(
    r"^\W{0,2}(?:editor'?s'?\s+note|editors?\s+note|note from the editor|a note|note|n\.\s?b\.|update|edit|correction|"
    r"clarification|disclosure|disclaimer|anm\.\s*d\.\s*red|hinweis der redaktion|redaktioneller hinweis|"
    r"anmerkung der redaktion|note de la rédaction|nda|nota del editor|nota de la redacci[oó]n|"
    r"nota della redazione|poznámka redakce)\b\s*[:.—–-]"
    r"|^(?:this (?:article|story|post|piece|interview|essay) (?:was|has been|is|first|originally|appeared)|"
    r"a version of this (?:article|story)|(?:cross-?posted|originally published|reprinted) )",
    _I,
)
_WRAPPED = re.compile(r"^\s*[\[(].*[\])]\s*$", re.S)
_TERMINAL = re.compile(r"[.!?…。！？:;\"”’»«)\]」』）]\s*$")
_DATELINE = re.compile(
    # LONDON (Reuters) — / SEOUL, South Korea — / NEW YORK-- / Berlin (dpa) - / April 17, 2015 --
    r"^(?:[A-ZÀ-Þ][A-ZÀ-Þ'’.\- ]{1,40}(?:,\s*[A-ZÀ-Þ][\w.’' ]{1,30})?\s*(?:\([^()]{1,40}\))?"
    r"|[A-ZÀ-Þ][\w.’' ]{1,30}(?:,\s*[^()—–]{1,30})?\s*\([^()]{1,40}\)"
    rf"|(?i:(?:(?:{_DAYS}),?\s+)?(?:(?:{_MONTHS})\.?\s+\d{{1,2}},?\s+\d{{4}}|\d{{1,2}}\.?\s+(?:{_MONTHS})\.?\s+\d{{4}})))"
    r"(?:\s*(?:—|–|--)|\s+-)\s*(?=\S)",
)
# German papers open with the town and a full stop: "Hamburg. Gabi Eutemüller steht…".
_TOWN_DOT = re.compile(r"^[A-ZÄÖÜ][a-zäöüß’'-]{3,}(?:[ -][A-ZÄÖÜ][a-zäöüß’'-]+)?\.\s+(?=[A-ZÄÖÜ„“\"«])")


@dataclass(frozen=True)
class Passed:
    """A paragraph the teaser passed over, and why (shown by ``digest teaser --json``)."""

    reason: str
    text: str


def word_count(text: str) -> int:
    """Words in a text; in Chinese and Japanese, where words are not spaced, two characters count
    as one word (about the length of a word there)."""
    unspaced = len(UNSPACED.findall(text))
    return len([w for w in words(text) if not UNSPACED.search(w)]) + (unspaced + 1) // 2


_COPYRIGHT = re.compile(
    r"\b(?:copyright(?:ed)?|all rights reserved|alle rechte vorbehalten|tous droits réservés|todos los derechos reservados)\b",
    _I,
)
# Breadcrumbs ("Home > News > Europe") and table rows ("| cell | cell |").
_NAVIGATION = re.compile(r"^(?:[^>›»|]{1,40}\s[>›»|]\s){2,}")
_EMBED = re.compile(r"^[—–-]\s*\S.{0,60}\(@\w+\)|pic\.twitter\.com/|^https?://\S+$|^@\w+$")
_TRAILINGCREDIT = re.compile(
    r"\((?:[^()]*/[^()]*|[^()]*(?:getty images|photo|foto|credit|reuters|afp|\bap\b|dpa)[^()]*)\)\s*$", _I
)


def furniture(text: str, *, author: str | None = None) -> str | None:
    """Why a paragraph is not part of the story (a reason), or None when it reads as prose."""
    text_words = words(text)
    n = word_count(text)
    stripped = text.strip()
    if _AD.match(stripped.strip(" -–—*·•[]()")):
        return "advertisement"
    if n <= 1:
        return "one-word line"
    if _EMBED.search(stripped):
        return "embedded post or link"
    if _NOTE.search(stripped):
        return "editor's note"
    if n <= 80 and _WRAPPED.match(stripped):
        return "editor's note"  # a whole paragraph in brackets is an aside, not the story
    if n <= 25 and _NAVIGATION.search(stripped):
        return "navigation"
    if n <= 16 and _STAMP.match(stripped):
        return "date stamp"
    if n <= 12 and _BYLINE.match(stripped):
        return "byline"
    if author and n <= 16 and folded(author) and folded(author) in folded(text):
        return "byline"
    if n <= 12 and len(_DATE_WORDS.sub(" ", re.sub(r"[\d/:.,|•·–—-]+", " ", text)).split()) <= n / 3:
        return "date stamp"
    if n <= 25 and (CREDIT.search(stripped) or _CAPTION_START.match(stripped)):
        return "caption or credit"
    if n <= 60 and _TRAILINGCREDIT.search(stripped):
        return "caption or credit"  # a caption that ends with its credit: "(Jane Doe/AFP/Getty Images)"
    if n <= 25 and _PROMPT.search(stripped):
        return "share or subscribe prompt"
    if n <= 25 and _COPYRIGHT.search(stripped):
        return "copyright notice"
    if n <= 30 and not _TERMINAL.search(stripped) and not UNSPACED.search(stripped[-1:]):
        return "subheading"
    if n <= 12 and stripped.endswith("?") and _title_case(text_words):
        return "subheading"
    return None


def _title_case(words: list[str]) -> bool:
    long = [w for w in words if len(w) > 3]
    return len(long) >= 2 and sum(w[0].isupper() for w in long) / len(long) >= 0.75


def strip_dateline(text: str, language: str | None = None) -> str:
    """The paragraph without a leading dateline such as "LONDON (Reuters) —" (or, in German,
    "Hamburg.")."""
    m = _DATELINE.match(text)
    if m and len(text) - m.end() > 20:
        return text[m.end() :]
    m = _TOWN_DOT.match(text) if language == "de" else None
    if m and len(text) - m.end() > 20:
        return text[m.end() :]
    return text


def _headline_forms(title: str) -> list[str]:
    """The headline, and its parts either side of a site name ("Story - Telegraph")."""
    forms = [folded(title)]
    for part in re.split(r"\s+[|–—-]\s+|\s*::\s*|_", title):
        if len(words(part)) >= 3:
            forms.append(folded(part))
    return [f for f in forms if f]


def repeats_headline(text: str, title: str) -> bool:
    """True when a sentence says no more than the headline does."""
    t = folded(text)
    if not t:
        return True
    forms = _headline_forms(title)
    if any(t == f or t in f for f in forms):
        return True
    tw = set(t.split())
    for f in forms:
        fw = set(f.split())
        if fw and len(tw & fw) / len(tw) >= 0.8 and len(tw) <= len(fw) + 2:
            return True
    return False


_CONTINUES = re.compile(r"^[\W\d]*[a-zà-ÿ]")


def rejoin_wrapped(paragraphs: list[str]) -> list[str]:
    """Paragraphs with hard-wrapped lines put back together.

    Some feeds break every line of a paragraph as if it were a paragraph of its own. A line that
    stops mid-sentence continues on the next when the next starts in lower case, or, in a text
    where such unfinished lines are common, whatever the next one starts with."""
    unfinished = [p for p in paragraphs if len(words(p)) >= 3 and not _TERMINAL.search(p)]
    wrapped = len(unfinished) >= 4 and len(unfinished) >= 0.3 * len(paragraphs)
    out: list[str] = []
    for p in paragraphs:
        if (
            out
            and not _TERMINAL.search(out[-1])
            and (_CONTINUES.match(p) or (wrapped and len(words(out[-1])) >= 4 and _line(out[-1]) and _line(p)))
        ):
            out[-1] = f"{out[-1]} {p}"
        else:
            out.append(p)
    return out


def _line(text: str) -> bool:
    """A piece that may be a line of running text (not a prompt, credit or such)."""
    return furniture(text) in {None, "subheading"}


def lead_paragraphs(article: Article, language: str | None = None) -> tuple[list[str], list[Passed]]:
    """The body's prose paragraphs in order, and what was passed over on the way."""
    passed: list[Passed] = [Passed("subheading", clean_text(b.text)) for b in article.body if b.kind == "h"]
    # Pages laid out in tables come through with their cell rules: "| text |".
    raw = [t for t in (clean_text(b.text).strip(" |") for b in article.body if b.kind == "p") if t]
    headline = set(_headline_forms(article.title))
    passed += [Passed("repeats the headline", p) for p in raw if folded(p) in headline]
    paragraphs = rejoin_wrapped([p for p in raw if folded(p) not in headline])
    normed = [folded(p) for p in paragraphs]
    counts = Counter(normed)
    everything = "\n".join(normed)
    kept: list[str] = []
    for i, (text, key) in enumerate(zip(paragraphs, normed)):
        reason = furniture(text, author=article.author)
        if reason is None and counts[key] > 1:
            reason = "repeated paragraph (a caption or pull quote)"
        if reason is None and key and len(key) < 400 and everything.count(key) > counts[key]:
            reason = "pull quote"  # its words appear again inside a longer paragraph
        if reason is None and i + 1 < len(paragraphs) and word_count(text) <= 40 and not kept:
            nxt = paragraphs[i + 1]
            if furniture(nxt) == "caption or credit" and CREDIT.search(nxt):
                reason = "caption"  # a photo's caption, followed by its credit line
        if reason:
            passed.append(Passed(reason, text))
            continue
        kept.append(strip_dateline(text, language) if not kept else text)
    if not kept:
        # Nothing read as prose by itself: take back what was only judged by its neighbours.
        kept = [p.text for p in passed if p.reason in BY_CONTEXT]
        passed = [p for p in passed if p.reason not in BY_CONTEXT]
    return kept, passed


BY_CONTEXT = {"caption", "pull quote", "repeated paragraph (a caption or pull quote)"}
