"""The article's language, and its sentences.

Sentences are split by pysbd in the article's language (detected from the text when the source
did not say), which knows abbreviations, decimals, initials and quotes.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

import pysbd

from digest.models import Article
from digest.text import UNSPACED, WORD

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
ALL_FUNCTION_WORDS = frozenset().union(*_FUNCTION_WORDS.values())
# pysbd's languages; languages it lacks borrow a close relative's rules.
_SEGMENTER_LANG = {"cs": "sk", "pt": "es", "sv": "da", "no": "da", "nb": "da", "nn": "da", "ca": "es", "gl": "es"}
_PYSBD = frozenset("am ar bg da de el en es fa fr hi hy it ja kk mr my nl pl ru sk ur zh".split())

_KANA = re.compile(r"[\u3040-\u30ff]")
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


def detect_language(text: str) -> str:
    """A cheap guess at a text's language (an ISO 639-1 code), good enough to pick sentence rules."""
    sample = text[:2000]
    letters = sum(ch.isalpha() for ch in sample) or 1
    unspaced = len(UNSPACED.findall(sample))
    if unspaced / letters > 0.3:
        return "ja" if _KANA.search(sample) else "zh"
    for pattern, lang in _SCRIPTS:
        if len(pattern.findall(sample)) / letters > 0.3:
            return lang
    words = Counter(w.casefold() for w in WORD.findall(sample))
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
