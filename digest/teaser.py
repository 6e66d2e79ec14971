"""Lead-paragraph teasers, written the way a sub-editor would.

The editor's own words win: a ``summary`` or ``teaser`` in an article file's front matter, else a
dek (standfirst), else the feed's or page's description when it says something of its own rather
than repeating the body's opening words (most feeds' descriptions do just that).

Otherwise the teaser comes from the lead. The body is read the way a sub-editor reads a page:
bylines, datelines ("LONDON (Reuters) —"), photo captions and credits, "Updated" stamps, share and
subscribe prompts, advertisements, subheadings and pull quotes, editor's notes and one-word lines
are not the story and are passed over. From the first sentences of what remains, the run of
sentences that fits the budget and best stands for the whole article is chosen: each sentence is
weighed by how much it shares with the rest of the article and with the headline, with a bias
towards the top (news is written lead first). A sentence that only repeats the headline is never
used. The teaser ends at a sentence boundary; when even one sentence is too long it is cut between
words and ends with "…", and any quote or parenthesis it opened is closed.

Sentences are split by pysbd in the article's language (detected from the text when the source
did not say), which knows abbreviations, decimals, initials and quotes. Text written without spaces
(Chinese, Japanese) is budgeted and cut by characters.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pysbd

from digest.models import Article, Teaser
from digest.sources.text import clean_text

DEFAULT_MAX_CHARS = 220
ELLIPSIS = "…"

# How many sentences of the lead are considered; news puts what matters first, and a teaser drawn
# from deeper in the piece reads as a quotation rather than an introduction.
LEAD_SENTENCES = 5


# --- language -------------------------------------------------------------------------------------

# Very common function words: enough to tell the languages apart on a paragraph or two, and to
# keep them out of the overlap measure below.
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and of to in is that for it with as was on are be by this have from at not but "
        "an or had has were which their they you we he she his her its been would will there",
        "de": "der die und das ist nicht ein eine den dem des mit sich auf für von zu im auch es "
        "als wird bei sie er nach wie noch aus werden hat sind wurde einen vor über auf",
        "fr": "le la les et des est une un du dans pour que qui pas sur au avec sont ce il elle "
        "par se plus aux ont été cette ses leur mais comme ou",
        "es": "el la los las y de que en un una es por con para del se no al lo como más su sus "
        "fue han pero este esta ha son",
        "it": "il la che e di un una per non sono con del della gli le nel alla è da si dei delle "
        "anche ma come ha al più",
        "nl": "de het een en van is dat op te in niet zijn met voor die er ook aan werd naar bij om maar dit hij zij",
        "da": "og det er en at til på den af for med som ikke har de var vi jeg men han hun",
        "pl": "i w nie na się z do to że jest o jak ale po co tak za od są przez który dla",
        "cs": "a je se na v že to s z do o ve pro jako ale by jsou už které který tak podle také "
        "byl byla bylo jsem při",
        "pt": "o a os as e de que em um uma para com não por do da dos das no na é se ao mais",
        "sv": "och det att i en som är på för med till av inte den har jag var",
    }.items()
}
_ALL_FUNCTION_WORDS = frozenset().union(*_FUNCTION_WORDS.values())
# pysbd's languages; languages it lacks borrow a close relative's rules.
_SEGMENTER_LANG = {"cs": "sk", "pt": "es", "sv": "da", "no": "da", "nb": "da", "nn": "da", "ca": "es", "gl": "es"}
_PYSBD = frozenset("am ar bg da de el en es fa fr hi hy it ja kk mr my nl pl ru sk ur zh".split())

_KANA = re.compile(r"[\u3040-\u30ff]")
# Scripts written without spaces between words, with their punctuation and full-width forms.
_UNSPACED = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_SCRIPTS = (
    (re.compile(r"[\uac00-\ud7af]"), "ko"),
    (re.compile(r"[\u0400-\u04ff]"), "ru"),
    (re.compile(r"[\u0370-\u03ff]"), "el"),
    (re.compile(r"[\u0600-\u06ff]"), "ar"),
    (re.compile(r"[\u0530-\u058f]"), "hy"),
    (re.compile(r"[\u0900-\u097f]"), "hi"),
    (re.compile(r"[\u1000-\u109f]"), "my"),
    (re.compile(r"[\u1200-\u137f]"), "am"),
)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def detect_language(text: str) -> str:
    """A cheap guess at a text's language (an ISO 639-1 code), good enough to pick sentence rules."""
    sample = text[:2000]
    letters = sum(ch.isalpha() for ch in sample) or 1
    unspaced = len(_UNSPACED.findall(sample))
    if unspaced / letters > 0.3:
        return "ja" if _KANA.search(sample) else "zh"
    for pattern, lang in _SCRIPTS:
        if len(pattern.findall(sample)) / letters > 0.3:
            return lang
    words = Counter(w.casefold() for w in _WORD.findall(sample))
    scores = {lang: sum(n for w, n in words.items() if w in fw) for lang, fw in _FUNCTION_WORDS.items()}
    best = max(scores, key=lambda k: scores[k])
    if scores[best] == 0:
        return "en"
    if best in {"cs", "pl"} or re.search(r"[ěřůň]", sample):
        # Czech and Slovak share most function words; these letters are Czech's own.
        return "cs" if re.search(r"[ěřů]", sample) else best
    return best


def article_language(article: Article) -> str:
    if article.language:
        return article.language.replace("_", "-").split("-")[0].lower()
    return detect_language(" ".join([article.title, *article.paragraphs[:6]]))


@lru_cache(maxsize=32)
def _segmenter(language: str) -> pysbd.Segmenter:
    lang = _SEGMENTER_LANG.get(language, language)
    return pysbd.Segmenter(language=lang if lang in _PYSBD else "en", clean=False)


def split_sentences(text: str, language: str | None = None) -> list[str]:
    """Sentences of one paragraph, by pysbd's rules for the language (English when unknown)."""
    lang = (language or "en").replace("_", "-").split("-")[0].lower()
    return [s.strip() for s in _segmenter(lang).segment(text) if s.strip()]


# --- the budget -----------------------------------------------------------------------------------


def fits(text: str, max_chars: int) -> bool:
    """Within the budget: counted in characters (not bytes), whatever the script."""
    return len(text) <= max_chars


_OPENERS = {
    "(": ")",
    "[": "]",
    "{": "}",
    "“": "”",
    "‘": "’",
    "«": "»",
    "‹": "›",
    "„": "“",
    "‚": "‘",
    "「": "」",
    "『": "』",
    "（": "）",
    "【": "】",
    "《": "》",
    "〈": "〉",
    "〔": "〕",
}
_CLOSERS = set(_OPENERS.values())


def unclosed(text: str) -> str:
    """The closing marks a text still owes, innermost first: ``'He said “we (all'`` owes ``')”'``."""
    stack: list[str] = []
    for i, ch in enumerate(text):
        if stack and ch == stack[-1]:
            if ch == "’" and _letters_around(text, i):
                continue  # an apostrophe (don’t), not a closing quote
            stack.pop()
        elif ch == '"':
            stack.append('"')
        elif ch == "»" and "»" not in stack:
            stack.append("«")  # German and Danish quote »like this«
        elif ch in _OPENERS:
            if ch == "‘" and _letters_around(text, i):
                continue
            stack.append(_OPENERS[ch])
        elif ch in _CLOSERS and ch in stack:
            # a mark closed out of order: close everything opened inside it as well
            while stack and stack.pop() != ch:
                pass
    return "".join(reversed(stack))


def _letters_around(text: str, i: int) -> bool:
    return 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()


def _cut_points(text: str, limit: int) -> int:
    """The longest prefix length ≤ ``limit`` that ends between two words (0 when none)."""
    if limit >= len(text):
        return len(text)
    for p in range(limit, 0, -1):
        before, after = text[p - 1], text[p]
        if after.isspace() or before.isspace():
            return p
        if _UNSPACED.match(before) or _UNSPACED.match(after):
            return p  # Chinese and Japanese: any two characters are a boundary
    return 0


# Where a clause ends inside a sentence: a cut there reads better than one mid-clause.
_PAUSES = (", ", "; ", " — ", " – ", ": ", "、", "，")
CLAUSE_CUT = 0.75
_DANGLING = " \t,;:/|·•-–—([{“‘„‚«‹\"'「『（【《〈、，"


def cut_at_word(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters, cut between words, ending with "…" and closing any quote or
    parenthesis left open. Empty when not even one whole word fits."""
    text = text.strip()
    if fits(text, max_chars):
        return text
    room = max_chars - len(ELLIPSIS)
    while room > 0:
        head = text[: _cut_points(text, room)]
        pause = max(head.rfind(mark) for mark in _PAUSES)
        if pause >= CLAUSE_CUT * room:
            head = head[:pause]  # end at a natural pause rather than mid-clause
        head = head.rstrip(_DANGLING)
        if not head:
            return ""
        owed = unclosed(head)
        out = head + ELLIPSIS + owed
        if fits(out, max_chars):
            return out
        room = len(head) - (len(out) - max_chars)
    return ""


def fit_sentences(sentences: list[str], max_chars: int) -> str:
    """The first sentences that fit whole; else the first one cut between words."""
    out = ""
    for s in sentences:
        candidate = _join(out, s)
        if not fits(candidate, max_chars):
            break
        out = candidate
    if out:
        return _closed(out, max_chars) or cut_at_word(out, max_chars)
    return cut_at_word(sentences[0], max_chars) if sentences else ""


def _join(a: str, b: str) -> str:
    if not a:
        return b
    if _UNSPACED.match(a[-1]) and b and _UNSPACED.match(b[0]):
        return a + b
    return f"{a} {b}"


def _closed(text: str, max_chars: int) -> str:
    """``text`` with any quote or parenthesis it left open closed, or "" when that no longer fits."""
    owed = unclosed(text)
    out = text + owed
    return out if fits(out, max_chars) else ""


# --- what is not the lead -------------------------------------------------------------------------

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
_CREDIT = re.compile(
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


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _norm(text: str) -> str:
    return " ".join(w.casefold() for w in _WORD.findall(text))


def word_count(text: str) -> int:
    """Words in a text; in Chinese and Japanese, where words are not spaced, two characters count
    as one word (about the length of a word there)."""
    unspaced = len(_UNSPACED.findall(text))
    return len([w for w in _words(text) if not _UNSPACED.search(w)]) + (unspaced + 1) // 2


_COPYRIGHT = re.compile(
    r"\b(?:copyright(?:ed)?|all rights reserved|alle rechte vorbehalten|tous droits réservés|todos los derechos reservados)\b",
    _I,
)
# Breadcrumbs ("Home > News > Europe") and table rows ("| cell | cell |").
_NAVIGATION = re.compile(r"^(?:[^>›»|]{1,40}\s[>›»|]\s){2,}")
_EMBED = re.compile(r"^[—–-]\s*\S.{0,60}\(@\w+\)|pic\.twitter\.com/|^https?://\S+$|^@\w+$")
_TRAILING_CREDIT = re.compile(
    r"\((?:[^()]*/[^()]*|[^()]*(?:getty images|photo|foto|credit|reuters|afp|\bap\b|dpa)[^()]*)\)\s*$", _I
)


def furniture(text: str, *, author: str | None = None) -> str | None:
    """Why a paragraph is not part of the story (a reason), or None when it reads as prose."""
    words = _words(text)
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
    if author and n <= 16 and _norm(author) and _norm(author) in _norm(text):
        return "byline"
    if n <= 12 and len(_DATE_WORDS.sub(" ", re.sub(r"[\d/:.,|•·–—-]+", " ", text)).split()) <= n / 3:
        return "date stamp"
    if n <= 25 and (_CREDIT.search(stripped) or _CAPTION_START.match(stripped)):
        return "caption or credit"
    if n <= 60 and _TRAILING_CREDIT.search(stripped):
        return "caption or credit"  # a caption that ends with its credit: "(Jane Doe/AFP/Getty Images)"
    if n <= 25 and _PROMPT.search(stripped):
        return "share or subscribe prompt"
    if n <= 25 and _COPYRIGHT.search(stripped):
        return "copyright notice"
    if n <= 30 and not _TERMINAL.search(stripped) and not _UNSPACED.search(stripped[-1:]):
        return "subheading"
    if n <= 12 and stripped.endswith("?") and _title_case(words):
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
    forms = [_norm(title)]
    for part in re.split(r"\s+[|–—-]\s+|\s*::\s*|_", title):
        if len(_words(part)) >= 3:
            forms.append(_norm(part))
    return [f for f in forms if f]


def repeats_headline(text: str, title: str) -> bool:
    """True when a sentence says no more than the headline does."""
    t = _norm(text)
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
    unfinished = [p for p in paragraphs if len(_words(p)) >= 3 and not _TERMINAL.search(p)]
    wrapped = len(unfinished) >= 4 and len(unfinished) >= 0.3 * len(paragraphs)
    out: list[str] = []
    for p in paragraphs:
        if (
            out
            and not _TERMINAL.search(out[-1])
            and (_CONTINUES.match(p) or (wrapped and len(_words(out[-1])) >= 4 and _line(out[-1]) and _line(p)))
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
    passed += [Passed("repeats the headline", p) for p in raw if _norm(p) in headline]
    paragraphs = rejoin_wrapped([p for p in raw if _norm(p) not in headline])
    normed = [_norm(p) for p in paragraphs]
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
            if furniture(nxt) == "caption or credit" and _CREDIT.search(nxt):
                reason = "caption"  # a photo's caption, followed by its credit line
        if reason:
            passed.append(Passed(reason, text))
            continue
        kept.append(strip_dateline(text, language) if not kept else text)
    if not kept:
        # Nothing read as prose by itself: take back what was only judged by its neighbours.
        kept = [p.text for p in passed if p.reason in _BY_CONTEXT]
        passed = [p for p in passed if p.reason not in _BY_CONTEXT]
    return kept, passed


_BY_CONTEXT = {"caption", "pull quote", "repeated paragraph (a caption or pull quote)"}


# --- choosing the lead sentences ------------------------------------------------------------------


def _terms(text: str) -> list[str]:
    """Content terms: words without the function words, cut to a crude stem; character pairs for
    Chinese and Japanese."""
    out: list[str] = []
    for w in _WORD.findall(text.casefold()):
        if _UNSPACED.search(w):
            run = "".join(ch for ch in w if _UNSPACED.match(ch))
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
            continue
        if len(w) < 3 or w in _ALL_FUNCTION_WORDS:
            continue
        out.append(w[:6])
    return out


@dataclass
class _Sentence:
    text: str
    position: int
    terms: Counter = field(default_factory=Counter)
    usable: bool = True


def _dot(a: Counter, b: Counter, weight: dict[str, float]) -> float:
    return sum(n * b[t] * weight.get(t, 1.0) ** 2 for t, n in a.items() if t in b)


def _norm_of(a: Counter, weight: dict[str, float]) -> float:
    return math.sqrt(sum((n * weight.get(t, 1.0)) ** 2 for t, n in a.items()))


def _cosine(a: Counter, b: Counter, weight: dict[str, float]) -> float:
    """Cosine likeness of two bags of terms, each term weighted."""
    na, nb = _norm_of(a, weight), _norm_of(b, weight)
    return _dot(a, b, weight) / (na * nb) if na and nb else 0.0


@dataclass(frozen=True)
class Weights:
    """How the lead's candidates are weighed. The defaults were chosen by ten-fold cross-validation
    over a small grid of round values on the teaser corpus (``bench/teasers.py --tune`` repeats
    it and prints each half's score); none of them names a site, a language or an article."""

    title: float = 0.5  # the headline's terms (cosine and share covered), beside the article's
    paragraphs: float = 1.0  # mean likeness to each paragraph: what the piece keeps returning to
    first: float = 1.0  # extra weight of the first sentence: news is written lead first
    cut: float = 1.2  # a long first sentence cut short still carries the story's first facts
    dependent: float = 0.7  # "But it…", "He said…": a sentence that leans on the one before
    colon: float = 0.5  # "…writes:" introduces a quotation the teaser would not show


WEIGHTS = Weights()

# Words that make a sentence lean on the one before it, when it starts with them.
_DEPENDENT = frozenset(
    "but and it this that these those he she they his her its so yet however also then there here still "
    "meanwhile instead aber und er sie es das dies diese dieser doch auch dann damit dabei deshalb denn "
    "mais et il elle ils elles ce cette ces cela ainsi pero y él ella ellos esto esta eso ma e lui lei "
    "questo questa però ale a to tento tato on ona také".split()
)


def _lead_sentences(paragraphs: list[str], title: str, language: str) -> list[_Sentence]:
    out: list[_Sentence] = []
    for p in paragraphs:
        for s in split_sentences(p, language):
            if len(out) >= LEAD_SENTENCES:
                return out
            usable = not repeats_headline(s, title) and furniture(s) not in _NOT_LEAD_SENTENCE
            if not out and not usable:
                continue
            out.append(_Sentence(s, len(out), Counter(_terms(s)), usable))
    return out


_NOT_LEAD_SENTENCE = {
    "byline",
    "caption or credit",
    "share or subscribe prompt",
    "advertisement",
    "date stamp",
    "editor's note",
}


def _candidates(sentences: list[_Sentence], max_chars: int) -> list[tuple[str, list[int], bool]]:
    """Every run of whole usable sentences that fits, and each sentence too long to fit cut short:
    (text, sentence indexes, cut)."""
    out: list[tuple[str, list[int], bool]] = []
    for i, first in enumerate(sentences):
        if not first.usable:
            continue
        text = ""
        for j in range(i, len(sentences)):
            if not sentences[j].usable:
                break
            text = _join(text, sentences[j].text)
            closed = _closed(text, max_chars)
            if not closed:
                if j == i:
                    cut = cut_at_word(first.text, max_chars)
                    if cut:
                        out.append((cut, [i], True))
                break
            out.append((closed, list(range(i, j + 1)), False))
    return out


@dataclass(frozen=True)
class Candidate:
    """A possible teaser from the lead, with what the choice weighs: its likeness to the rest of
    the article (``body``), to the headline (``title``) and to the paragraphs on average."""

    text: str
    sentences: int
    first: bool
    cut: bool
    body: float
    title: float
    paragraphs: float

    def score(self, w: Weights = WEIGHTS) -> float:
        score = (self.body + w.title * self.title + w.paragraphs * self.paragraphs) / self.sentences
        if self.first:
            score *= 1 + w.first
        if self.cut:
            score *= w.cut
        if _first_word(self.text) in _DEPENDENT:
            score *= w.dependent
        if self.text.endswith(":"):
            score *= w.colon
        return score


def lead_candidates(paragraphs: list[str], title: str, language: str, max_chars: int) -> list[Candidate]:
    """Every teaser the lead allows within ``max_chars``, measured."""
    sentences = _lead_sentences(paragraphs, title, language)
    if not sentences:
        return []
    body = Counter(_terms(" ".join(paragraphs)))
    head = Counter(_terms(title))
    each = [Counter(_terms(p)) for p in paragraphs]
    # A term found in every paragraph tells the sentences apart less than one found in a few.
    df = Counter(t for p in each for t in p)
    weight = {t: math.log(1 + len(each) / (1 + df[t])) + 0.5 for t in body | head}
    head_mass = sum(weight[t] for t in head) or 1.0
    # The mean cosine with each paragraph is a dot product with the sum of the paragraphs' unit
    # vectors, so that sum is made once.
    centroid: Counter = Counter()
    for p in each:
        norm = _norm_of(p, weight)
        for t, n in p.items():
            centroid[t] += n / norm if norm else 0.0
    out = []
    for text, idx, cut in _candidates(sentences, max_chars):
        terms = Counter(_terms(text))
        own = sum((sentences[k].terms for k in idx), Counter())
        out.append(
            Candidate(
                text=text,
                sentences=len(idx),
                first=idx[0] == 0,
                cut=cut,
                body=_cosine(terms, body - own, weight),
                title=_cosine(terms, head, weight) + sum(weight[t] for t in head if t in terms) / head_mass,
                paragraphs=_dot(terms, centroid, weight) / ((_norm_of(terms, weight) or 1.0) * len(each)),
            )
        )
    return out


def choose_lead(paragraphs: list[str], title: str, language: str, max_chars: int, weights: Weights = WEIGHTS) -> str:
    """The run of lead sentences that best stands for the article within ``max_chars``."""
    best, best_score = "", -1.0
    for c in lead_candidates(paragraphs, title, language, max_chars):
        score = c.score(weights)
        if score > best_score + 1e-12:
            best, best_score = c.text, score
    return best


def _first_word(text: str) -> str:
    parts = text.split(maxsplit=1)
    return parts[0].strip("“\"„«‘'").casefold() if parts else ""


# --- the editor's choice --------------------------------------------------------------------------

_READ_MORE = re.compile(
    r"(?:\s*(?:\[\s*(?:…|\.\.\.)\s*\]|\(\s*(?:…|\.\.\.)\s*\)|…|\.\.\.)|\s*(?:read more|continue reading|weiterlesen|mehr lesen|lire la suite|leer más|leggi tutto)\W*)+\s*$",
    _I,
)
_EDITOR_FILES = {".md", ".markdown", ".txt"}


def is_body_opening(summary: str, article: Article) -> bool:
    """True when a description only repeats the body's first words (as most feeds' do), allowing
    for a dateline or byline before them, a trailing "…" or "Read more", and a last word cut short."""
    said = _norm(_READ_MORE.sub("", summary)).split()
    if not said:
        return True
    body = _norm(" ".join(article.paragraphs[:4])).split()
    probe = said[:4]
    for start in range(min(60, len(body))):
        if body[start : start + len(probe)] != probe:
            continue
        window = body[start : start + len(said)]
        same = sum(a == b for a, b in zip(said[:-1], window))
        last = window[len(said) - 1] if len(window) == len(said) else ""
        same += last.startswith(said[-1])
        if same >= 0.9 * len(said):
            return True
    return False


def editors_choice(article: Article) -> tuple[str, str] | None:
    """(where it came from, text) of a teaser an editor wrote, or None."""
    origin = Path(article.origin).suffix.lower() if article.origin else ""
    summary = clean_text(article.summary)
    if summary and origin in _EDITOR_FILES:
        return "front matter summary", summary
    dek = clean_text(article.dek)
    if dek and not repeats_headline(dek, article.title):
        return "dek", dek
    if (
        summary
        and not repeats_headline(summary, article.title)
        and not is_body_opening(summary, article)
        and _about(summary, article)
    ):
        return "description", _READ_MORE.sub("", summary).strip()
    return None


def _about(description: str, article: Article) -> bool:
    """Whether a description speaks of this article at all, rather than being the site's own blurb
    ("The latest news and headlines from…") repeated on every page."""
    said = _roots(description)
    shared = said & _roots(" ".join([article.title, *article.paragraphs]))
    return bool(shared) and len(shared) >= 0.15 * len(said)


def _roots(text: str) -> set[str]:
    """Content words cut to their first four letters: "voted" and "vote" meet, as do "books" and
    "book"; Chinese and Japanese text gives its character pairs."""
    return {t[:4] for t in _terms(text) if len(t) >= 4 or _UNSPACED.search(t)}


# --- the teaser -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TeaserChoice:
    """A teaser and how it came about: ``origin`` is "front matter summary", "dek",
    "description", "lead" or "none"; ``passed`` lists the paragraphs passed over."""

    text: str
    origin: str
    language: str
    passed: tuple[Passed, ...] = ()


def choose_teaser(article: Article, max_chars: int = DEFAULT_MAX_CHARS) -> TeaserChoice:
    language = article_language(article)
    chosen = editors_choice(article)
    if chosen:
        origin, text = chosen
        return TeaserChoice(_tidy(fit_sentences(split_sentences(text, language), max_chars)), origin, language)
    paragraphs, passed = lead_paragraphs(article, language)
    text = _tidy(choose_lead(paragraphs, article.title, language, max_chars))
    return TeaserChoice(text, "lead" if text else "none", language, tuple(passed))


_TAGLIKE = re.compile(r"<[A-Za-z/!?][^<>]*>")


def _tidy(text: str) -> str:
    """One line of plain text: entities decoded, anything tag-like dropped, spaces folded."""
    text = _TAGLIKE.sub(" ", html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


def as_teaser(text: str) -> Teaser:
    """A plain-text teaser in its two forms: the text, and the same text HTML-escaped."""
    return Teaser(text=text, html=html.escape(text, quote=True))


def make_teaser(article: Article, max_chars: int = DEFAULT_MAX_CHARS) -> Teaser:
    """The teaser for an article in its two forms: plain text, and the same text HTML-escaped."""
    return as_teaser(choose_teaser(article, max_chars).text)
