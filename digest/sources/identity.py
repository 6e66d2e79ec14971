"""Who an article is: a stable id, and the canonical form of its URL.

An id comes from the feed's GUID when that GUID can be trusted, else from the canonical URL,
else from a hash of the article's text. The store also matches articles by canonical URL and by
text fingerprint (see :meth:`digest.store.Store.store_articles`), so the same article reached
through two sources, or through a GUID the publisher changed, is stored once.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from digest.models import Block

# Query parameters that say how a reader arrived, not what they read.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "ref",
        "ref_src",
        "ref_url",
        "referrer",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "cmpid",
        "ncid",
        "sr_share",
        "at_medium",
        "at_campaign",
    }
)
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Longest id kept verbatim; longer ones are hashed (the store's key column is 255 wide).
MAX_ID = 200
# Below this much text a fingerprint says too little to call two articles the same.
MIN_FINGERPRINT_CHARS = 200


def _is_tracking(name: str) -> bool:
    n = name.lower()
    return n in TRACKING_PARAMS or n.startswith(TRACKING_PREFIXES)


def _normalise_path(path: str) -> str:
    # Re-quote so that "%7e", "~" and "%7E" compare equal, keeping reserved characters as they are.
    path = quote(unquote(path), safe="/:@!$&'()*+,;=-._~")
    segments: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if segments:
                segments.pop()
        elif seg not in (".", ""):
            segments.append(seg)
    return "/" + "/".join(segments) if segments else ""


def canonical_url(url: str | None, *, keep_fragment: bool = False) -> str | None:
    """The form of an http(s) URL used to recognise the same page: scheme and host normalised
    (``http`` and ``https``, ``www.`` or not, count as the same), default port, fragment,
    tracking parameters (``utm_*``, ``fbclid``, ``gclid``, ``ref`` ...) and a trailing slash
    removed. None for anything that is not an http(s) URL. ``keep_fragment`` keeps the fragment,
    for feeds whose items are fragments of one page (see :func:`article_id`).

    >>> canonical_url("HTTP://WWW.Example.org:80/a/b/?utm_source=x&id=3#top")
    'https://example.org/a/b?id=3'
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    host = host.lower().removeprefix("www.")
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)]
    fragment = parts.fragment if keep_fragment else ""
    return urlunsplit(("https", netloc, _normalise_path(parts.path), urlencode(query, doseq=True), fragment))


def text_fingerprint(title: str, body: Sequence[Block]) -> str | None:
    """A hash of an article's words (case and punctuation ignored), or None when there are too few
    words to tell two articles apart by them."""
    words = re.findall(r"\w+", (title + " " + " ".join(b.text for b in body)).lower())
    text = " ".join(words)
    if len(text) < MIN_FINGERPRINT_CHARS:
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _short(value: str, prefix: str) -> str:
    return value if len(value) <= MAX_ID else prefix + hashlib.sha256(value.encode("utf-8")).hexdigest()


def trusted_guids(guids: Iterable[str | None], *, feed_links: Iterable[str | None] = ()) -> set[str]:
    """The GUIDs of a feed that identify one item each: present, unique within the feed, and not
    the address of the feed or its home page (some feeds give every item the site's URL)."""
    seen = Counter(g.strip() for g in guids if g and g.strip())
    homes = {c for c in (canonical_url(u) for u in feed_links) if c}
    return {g for g, n in seen.items() if n == 1 and canonical_url(g) not in homes}


def article_id(
    *, source: str, guid: str | None, url: str | None, title: str, body: Sequence[Block], keep_fragment: bool = False
) -> str:
    """The stable id of an article.

    ``guid`` must already be known to be trustworthy (see :func:`trusted_guids`); pass None when it
    is not. A GUID that is an http(s) URL is used in its canonical form, so it meets the same
    article's link from another source; another URI (``tag:``, ``urn:``) is globally unique as it
    stands; a bare GUID ("12345") is unique only within its feed, so it is prefixed with the source.
    """
    if guid:
        guid = guid.strip()
        as_url = canonical_url(guid, keep_fragment=keep_fragment)
        if as_url:
            return _short(as_url, "url-sha256:")
        if _SCHEME.match(guid) and not guid.lower().startswith(("http:", "https:")):
            return _short(guid, "guid-sha256:")
        return _short(f"{source}#{guid}", "guid-sha256:")
    as_url = canonical_url(url, keep_fragment=keep_fragment)
    if as_url:
        return _short(as_url, "url-sha256:")
    words = " ".join(re.findall(r"\w+", (title + " " + " ".join(b.text for b in body)).lower()))
    return "sha256:" + hashlib.sha256(f"{source}\0{words}".encode()).hexdigest()
