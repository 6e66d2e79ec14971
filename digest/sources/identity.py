"""Who an article is: a stable id, and the canonical form of its URL.

An id comes from the feed's GUID when that GUID can be trusted, else from the canonical URL,
else from a hash of the article's text. Articles are also recognised by canonical URL, by text
fingerprint and by title and minute (:func:`recognition_keys`), so the same article reached through
two sources, or through a GUID the publisher changed, is stored once: :func:`plan_upsert` decides,
from what the store knows, what storing a batch writes.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from digest.models import (
    Article,
    ArticleKey,
    ArticleWrite,
    Block,
    KnownArticles,
    StoredArticle,
    UpsertPlan,
    UpsertReport,
)

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


# --- dedupe: what storing a batch writes ---------------------------------------------------------

#: Each item's recognition keys as (kind, key), strongest first; kind is id, url, text or dated.
BatchKeys = tuple[tuple[tuple[str, str], ...], ...]


def article_key(kind: str, value: str) -> str:
    """The stored recognition key for an id (``kind`` "id"), a canonical URL ("url"), a text
    fingerprint ("text") or a title and minute ("dated"): a hash of fixed width."""
    return hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()


def content_hash(a: Article) -> str:
    """A hash of what a reader sees of an article: a stored article whose hash changed was edited."""
    h = hashlib.sha256()
    # The dates count (a new "updated" is an edit), except a first-seen date, which is this run's clock.
    published = "" if a.date_is_first_seen else a.published.isoformat()
    updated = a.updated.isoformat() if a.updated else ""
    for part in (
        a.title,
        a.url or "",
        a.dek or "",
        a.summary or "",
        a.author or "",
        a.image or "",
        published,
        updated,
        "\x1f".join(a.tags),
    ):
        h.update(part.encode("utf-8") + b"\0")
    for b in a.body:
        h.update(b.kind.encode() + b.text.encode("utf-8") + b"\0")
    return h.hexdigest()


def _keys_for(a: Article, shared_urls: set[str]) -> tuple[tuple[str, str], ...]:
    keys = [("id", article_key("id", a.id))]
    url = canonical_url(a.url)
    if url and url not in shared_urls:
        keys.append(("url", article_key("url", url)))
    fingerprint = text_fingerprint(a.title, a.body)
    if fingerprint:
        keys.append(("text", article_key("text", fingerprint)))
    title_words = " ".join(re.findall(r"\w+", a.title.lower()))
    if not a.date_is_first_seen and title_words:
        # The same title published the same minute: one site's RSS and JSON feeds, which may
        # link the same post differently (a link blog's permalink in one, the linked page in the other).
        when = a.published.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M")
        keys.append(("dated", article_key("dated", f"{title_words}|{when}")))
    return tuple(keys)


def recognition_keys(batch: Sequence[Article]) -> BatchKeys:
    """For each article of a batch, the keys it can be recognised by, strongest first. A URL that
    several items of one source's batch share identifies none of them: a feed that lists two items
    under one link (a link blog, or posts that are anchors on one day's page) means two articles."""
    url_count = Counter((a.source, url) for a in batch if (url := canonical_url(a.url)))
    shared_urls = {url for (_src, url), n in url_count.items() if n > 1}
    return tuple(_keys_for(a, shared_urls) for a in batch)


def _stored(write: ArticleWrite) -> StoredArticle:
    a = write.article
    return StoredArticle(
        id=a.id,
        source=a.source,
        content_hash=write.content_hash,
        first_seen=write.first_seen,
        published=a.published,
        body_chars=sum(len(b.text) for b in a.body),
    )


def plan_upsert(batch: Sequence[Article], keys: BatchKeys, known: KnownArticles, *, now: datetime) -> UpsertPlan:
    """What storing a batch (one source's read) writes, given its :func:`recognition_keys` and what
    the store holds for them.

    An incoming article is the stored one with the same id, else the one with the same canonical
    URL, else the one with the same text fingerprint, else the one with the same title published
    the same minute. Then:

    - from the source that stored it: updated in place when its content changed (an edit, or a GUID
      the publisher changed while the link stayed); the row keeps its id and first-seen time, and an
      undated item keeps its first-seen date;
    - from another source: a duplicate, not stored again, unless this copy has more text (a full
      article where the first source had a stub), which then replaces the stored one.

    Two items of the same batch with different ids are never merged.
    """
    batch_ids: dict[str, set[str]] = {}
    for a in batch:
        batch_ids.setdefault(a.source, set()).add(a.id)
    owners = dict(known.owners)
    stored = dict(known.by_id)
    inserts: dict[str, ArticleWrite] = {}
    updates: dict[str, ArticleWrite] = {}
    new_keys: list[ArticleKey] = []
    new = updated = unchanged = duplicates = 0
    for a, item_keys in zip(batch, keys):
        target = None
        for kind, key in item_keys:
            match = stored.get(owners.get(key, ""))
            if match is None:
                continue
            if kind != "id" and match.source == a.source and match.id != a.id and match.id in batch_ids[a.source]:
                continue
            target = match
            break
        # A row stored before it had keys.
        target = target or stored.get(a.id)
        h = content_hash(a)
        if target is None:
            write = ArticleWrite(a, first_seen=now, content_hash=h)
            inserts[a.id] = write
            stored[a.id] = _stored(write)
            new += 1
            owner = a.id
        else:
            owner = target.id
            replaces = (
                target.content_hash != h
                if target.source == a.source
                else sum(len(b.text) for b in a.body) > target.body_chars
            )
            if replaces:
                # An undated item keeps the moment it was first seen, not this run's.
                published = target.published if a.date_is_first_seen else a.published
                write = ArticleWrite(
                    replace(a, id=target.id, published=published), first_seen=target.first_seen, content_hash=h
                )
                (inserts if target.id in inserts else updates)[target.id] = write
                stored[target.id] = _stored(write)
                updated += 1
            elif target.source == a.source:
                unchanged += 1
            else:
                duplicates += 1
        for _, key in item_keys:
            if key not in owners:
                owners[key] = owner
                new_keys.append(ArticleKey(key=key, article_id=owner, source=a.source))
    return UpsertPlan(
        inserts=tuple(inserts.values()),
        updates=tuple(updates.values()),
        keys=tuple(new_keys),
        report=UpsertReport(new, updated, unchanged, duplicates),
    )
