"""A folder of article files: Markdown with YAML front matter, HTML, and plain-text page dumps."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

from digest.errors import SourceError
from digest.models import Article, Block
from digest.sources.base import Source, SourceResult, SourceState
from digest.sources.encoding import decode_document
from digest.sources.identity import canonical_url
from digest.sources.markup import markdown_blocks, split_front_matter
from digest.sources.text import as_aware, parse_loose_date
from digest.sources.textpage import parse_text_page
from digest.text import normalise_space

log = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = {".md", ".markdown"}
TEXT_SUFFIXES = {".txt"}
HTML_SUFFIXES = {".html", ".htm"}
ARTICLE_SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES


class FolderSource(Source):
    kind = "folder"

    def collect(self, now: datetime, state: SourceState | None = None) -> SourceResult:
        folder = self.settings.path
        assert folder is not None
        if not folder.is_dir():
            raise SourceError(f"source {self.name!r}: folder {folder} does not exist; fix sources.path in the config")
        found: list[Article] = []
        problems: list[str] = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in ARTICLE_SUFFIXES):
            if any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue
            try:
                found.append(read_article_file(path, source=self.name, tz=self.tz, root=folder))
            except (ValueError, OSError, UnicodeDecodeError) as exc:
                problems.append(f"{path}: skipped: {exc}")
        return SourceResult(tuple(found), problems=tuple(problems))


def read_article_file(
    path: Path, *, source: str, tz: Any, root: Path | None = None, require_date: bool = True
) -> Article:
    """Read one article file of any supported format. Raises ValueError naming what is wrong.

    With ``require_date=False`` (tools that only look at the text, such as ``digest teaser``) an
    undated file is read too: its date is the file's modification time, marked as first seen.
    """
    suffix = path.suffix.lower()
    # HTML says its own encoding; Markdown and text files must be UTF-8.
    text = decode_document(path.read_bytes()).text if suffix in HTML_SUFFIXES else path.read_text(encoding="utf-8")
    undated = None if require_date else _file_time(path, tz)
    rel = path.relative_to(root).as_posix() if root else path.name
    fallback_id = f"file:{source}/{rel}"
    if suffix in TEXT_SUFFIXES:
        page = parse_text_page(text)
        published = as_aware(page.date, tz) if page.date else undated
        if published is None:
            raise ValueError("no date found on lines 2-4 (expected a date such as 'July 25, 2025')")
        return Article(
            id=fallback_id,
            source=source,
            title=page.headline,
            dek=page.dek,
            published=published,
            body=page.body,
            origin=str(path),
            date_is_first_seen=page.date is None,
        )
    if suffix in MARKDOWN_SUFFIXES:
        meta, body_text = split_front_matter(text)
        return _from_front_matter(
            meta,
            markdown_blocks(body_text),
            path=path,
            source=source,
            tz=tz,
            fallback_id=fallback_id,
            undated=undated,
            summary_by_editor=True,
        )
    if suffix in HTML_SUFFIXES:
        from digest.sources.page import extract_page

        extracted = extract_page(text)
        if extracted is None:
            raise ValueError("no article text found in the HTML")
        # The page's own description, not an editor's: the teaser still checks it says something.
        meta = {
            "title": extracted.title,
            "date": extracted.date,
            "url": extracted.url,
            "author": extracted.author,
            "image": extracted.image,
            "summary": extracted.description,
        }
        return _from_front_matter(
            meta, extracted.body, path=path, source=source, tz=tz, fallback_id=fallback_id, undated=undated
        )
    raise ValueError(f"unsupported file type {suffix!r}")


def _file_time(path: Path, tz: Any) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz)


def _date(value: Any, tz: Any, key: str) -> datetime:
    if isinstance(value, datetime):
        return as_aware(value, tz)
    if isinstance(value, date):
        return as_aware(value, tz)
    if isinstance(value, str):
        try:
            return as_aware(datetime.fromisoformat(value.strip().replace("Z", "+00:00")), tz)
        except ValueError:
            d = parse_loose_date(value)
            if d is not None:
                return as_aware(d, tz)
    raise ValueError(f"{key}: expected a date such as 2025-08-06 or 2025-08-06T10:30:00+01:00, got {value!r}")


def _from_front_matter(
    meta: dict[str, Any],
    body: tuple[Block, ...],
    *,
    path: Path,
    source: str,
    tz: Any,
    fallback_id: str,
    undated: datetime | None = None,
    summary_by_editor: bool = False,
) -> Article:
    """The article that front matter (or a page's metadata in its shape) describes.
    ``summary_by_editor``: a summary there was written by an editor, and the teaser takes it as it is."""
    known = {
        "title",
        "date",
        "updated",
        "url",
        "author",
        "summary",
        "teaser",
        "dek",
        "image",
        "image_alt",
        "tags",
        "section",
        "lang",
        "language",
        "draft",
        "id",
    }
    for key in meta:
        if key not in known:
            log.debug("%s: front matter key %r ignored", path, key)
    title = normalise_space(str(meta.get("title") or ""))
    if not title:
        raise ValueError("front matter has no title")
    published = _date(meta["date"], tz, "date") if meta.get("date") is not None else undated
    if published is None:
        raise ValueError("front matter has no date")
    tags = meta.get("tags") or ()
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",")]
    elif not isinstance(tags, list):
        tags = [tags]  # one tag written as a number or a date (`tags: 2025`)
    url = str(meta["url"]).strip() if meta.get("url") else None
    summary = normalise_space(str(meta.get("teaser") or meta.get("summary") or "")) or None
    return Article(
        id=str(meta.get("id") or canonical_url(url) or fallback_id),
        source=source,
        title=title,
        url=url,
        published=published,
        date_is_first_seen=meta.get("date") is None,
        updated=_date(meta["updated"], tz, "updated") if meta.get("updated") else None,
        author=normalise_space(str(meta["author"])) if meta.get("author") else None,
        dek=normalise_space(str(meta["dek"])) if meta.get("dek") else None,
        summary=summary,
        summary_by_editor=summary_by_editor and summary is not None,
        image=str(meta["image"]) if meta.get("image") else None,
        image_alt=normalise_space(str(meta["image_alt"])) if meta.get("image_alt") else None,
        tags=tuple(normalise_space(str(t)) for t in tags if str(t).strip()),
        section=normalise_space(str(meta["section"])) if meta.get("section") else None,
        language=str(meta.get("language") or meta.get("lang") or "") or None,
        body=body,
        origin=str(path),
    )
