"""JSON Feed 1.0 and 1.1 (https://www.jsonfeed.org/version/1.1/), which feedparser does not read.

:func:`parse_json_feed` validates as it reads. A document that is not a JSON Feed at all (not
JSON, not an object, no ``version`` naming jsonfeed.org, ``items`` not a list) raises
:class:`JsonFeedError` with one line saying why. Problems confined to one item or one field (an
item that is not an object or has no ``id``, a date that is not RFC 3339, a string where an object
belongs) skip that item or field and are reported in ``problems``, as real feeds get such details
wrong without being unreadable.

Version differences handled: 1.1 replaced ``author`` (an object) with ``authors`` (a list) and
added ``language``; 1.0 feeds keep working, and a feed carrying both uses ``authors``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

VERSION_PREFIXES = ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")
# Some generators write the number alone; there is no other JSON document it could be confused with.
BARE_VERSIONS = ("1", "1.0", "1.1")


class JsonFeedError(ValueError):
    """The document is not a JSON Feed."""


@dataclass(frozen=True)
class JsonFeedAttachment:
    url: str
    mime_type: str


@dataclass(frozen=True)
class JsonFeedItem:
    id: str | None
    url: str | None = None
    external_url: str | None = None
    title: str | None = None
    content_html: str | None = None
    content_text: str | None = None
    summary: str | None = None
    image: str | None = None
    banner_image: str | None = None
    date_published: datetime | None = None
    date_modified: datetime | None = None
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    language: str | None = None
    attachments: tuple[JsonFeedAttachment, ...] = ()


@dataclass(frozen=True)
class JsonFeed:
    version: str
    title: str | None
    home_page_url: str | None
    feed_url: str | None
    language: str | None
    authors: tuple[str, ...]
    items: tuple[JsonFeedItem, ...]
    problems: tuple[str, ...] = ()


def looks_like_json(data: bytes) -> bool:
    """True when a document's first non-blank character opens a JSON object or list."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith((b"{", b"["))


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 date-time, which JSON Feed requires. Raises ValueError for anything else,
    including a date-time without an offset."""
    v = value.strip()
    if len(v) < 20 or v[10] not in "Tt ":
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    when = datetime.fromisoformat(v[:-1] + "+00:00" if v[-1] in "Zz" else v)
    if when.tzinfo is None:
        raise ValueError(f"date-time without a time zone offset: {value!r}")
    return when


class _Reader:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def summary(self) -> tuple[str, ...]:
        """The problems, each kind once: "items[*].x: ..." with how many items had it."""
        groups: dict[str, list[str]] = {}
        for p in self.problems:
            where, _, what = p.partition(": ")
            pattern = re.sub(r"\[\d+\]", "[*]", where) + ": " + re.sub(r"'[^']*'", "'…'", what)
            groups.setdefault(pattern, []).append(p)
        out = []
        for found in groups.values():
            out.append(found[0] if len(found) == 1 else f"{found[0]} (and {len(found) - 1} more like it)")
        return tuple(out)

    def string(self, obj: dict[str, Any], key: str, where: str) -> str | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "id":
            # The spec says a string, and "if an id is presented as a number ... coerce it".
            return str(value)
        self.problems.append(f"{where}.{key}: expected a string, got {type(value).__name__}; ignored")
        return None

    def date(self, obj: dict[str, Any], key: str, where: str) -> datetime | None:
        value = self.string(obj, key, where)
        if value is None:
            return None
        try:
            return parse_rfc3339(value)
        except ValueError as exc:
            problem = str(exc)
        try:
            # Lenient: ISO 8601 without seconds or offset is common; an offset-less time is UTC.
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            self.problems.append(f"{where}.{key}: {problem}; ignored")
            return None
        self.problems.append(f"{where}.{key}: {problem}; read as ISO 8601" + (" in UTC" if when.tzinfo is None else ""))
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)

    def authors(self, obj: dict[str, Any], where: str) -> tuple[str, ...]:
        found: list[str] = []
        many = obj.get("authors")
        if isinstance(many, list):
            entries = many
        elif many is not None:
            self.problems.append(f"{where}.authors: expected a list; ignored")
            entries = []
        else:
            one = obj.get("author")
            entries = [one] if one is not None else []
        for a in entries:
            if isinstance(a, dict) and isinstance(a.get("name"), str) and a["name"].strip():
                found.append(a["name"].strip())
            elif not isinstance(a, dict):
                self.problems.append(f"{where}.author: expected an object with a name; ignored")
        return tuple(found)

    def item(self, obj: Any, where: str) -> JsonFeedItem | None:
        if not isinstance(obj, dict):
            self.problems.append(f"{where}: expected an object, got {type(obj).__name__}; item skipped")
            return None

        def s(key: str) -> str | None:
            return self.string(obj, key, where)

        url = s("url")
        ident = s("id")
        if ident is None or not ident.strip():
            # "id" is required; without it the item is still readable, identified by its url or text.
            self.problems.append(f"{where}: no id; identified by its " + ("url" if url else "text"))
            ident = None
        tags = obj.get("tags")
        attachments = []
        for att in obj.get("attachments") or []:
            if isinstance(att, dict) and isinstance(att.get("url"), str) and isinstance(att.get("mime_type"), str):
                attachments.append(JsonFeedAttachment(att["url"], att["mime_type"]))
        return JsonFeedItem(
            id=ident,
            url=url,
            external_url=s("external_url"),
            title=s("title"),
            content_html=s("content_html"),
            content_text=s("content_text"),
            summary=s("summary"),
            image=s("image"),
            banner_image=s("banner_image"),
            date_published=self.date(obj, "date_published", where),
            date_modified=self.date(obj, "date_modified", where),
            authors=self.authors(obj, where),
            tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
            language=s("language"),
            attachments=tuple(attachments),
        )


def parse_json_feed(data: bytes | str) -> JsonFeed:
    """Parse and validate a JSON Feed document (see the module docstring)."""
    text = data.decode("utf-8-sig", errors="replace") if isinstance(data, bytes) else data.lstrip("\ufeff")
    try:
        # strict=False: raw control characters inside strings are tolerated, as browsers do.
        doc = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise JsonFeedError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise JsonFeedError("not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise JsonFeedError(f"not a JSON Feed: the document is a JSON {type(doc).__name__}, not an object")
    version = doc.get("version")
    r = _Reader()
    if version in BARE_VERSIONS:
        r.problems.append(
            f'feed.version: should be the URL "https://jsonfeed.org/version/{version}", got {version!r}; read as JSON Feed {version}'
        )
        version = VERSION_PREFIXES[0] + str(version)
    if not isinstance(version, str) or not version.startswith(VERSION_PREFIXES):
        hint = " (this looks like RSS written as JSON)" if "rss" in doc else ""
        raise JsonFeedError(f'not a JSON Feed: no "version" naming https://jsonfeed.org/version/...{hint}')
    items = doc.get("items")
    if not isinstance(items, list):
        raise JsonFeedError('not a valid JSON Feed: "items" must be a list')
    if not isinstance(doc.get("title"), str):
        r.problems.append('feed: "title" is required; missing')
    parsed = tuple(i for i in (r.item(obj, f"items[{n}]") for n, obj in enumerate(items)) if i is not None)
    return JsonFeed(
        version=version.rsplit("/", 1)[-1],
        title=r.string(doc, "title", "feed"),
        home_page_url=r.string(doc, "home_page_url", "feed"),
        feed_url=r.string(doc, "feed_url", "feed"),
        language=r.string(doc, "language", "feed"),
        authors=r.authors(doc, "feed"),
        items=parsed,
        problems=r.summary(),
    )
