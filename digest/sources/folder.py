"""A folder of article files: Markdown with YAML front matter, HTML, and plain-text page dumps."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from digest.errors import SourceError
from digest.models import Article, Block
from digest.sources.base import Source, SourceResult, SourceState
from digest.sources.encoding import decode_document
from digest.sources.identity import canonical_url
from digest.sources.images import file_image_width
from digest.sources.markup import markdown_blocks, split_front_matter
from digest.sources.text import as_aware, parse_loose_date
from digest.sources.textpage import parse_text_page
from digest.text import normalise_space

log = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = {".md", ".markdown"}
TEXT_SUFFIXES = {".txt"}
HTML_SUFFIXES = {".html", ".htm"}
ARTICLE_SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES
#: The default largest article file read (a folder source's ``max_file_mb``).
MAX_FILE_BYTES = 5 * 1024 * 1024


class FolderSource(Source):
    kind = "folder"

    def collect(self, now: datetime, state: SourceState | None = None) -> SourceResult:
        folder = self.settings.path
        assert folder is not None
        if not folder.is_dir():
            raise SourceError(f"source {self.name!r}: folder {folder} does not exist; fix sources.path in the config")
        found: list[Article] = []
        problems: list[str] = []
        max_bytes = int(self.settings.max_file_mb * 1024 * 1024)
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in ARTICLE_SUFFIXES):
            if any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue
            try:
                found.append(
                    read_article_file(
                        path,
                        source=self.name,
                        tz=self.tz,
                        root=folder,
                        max_bytes=max_bytes,
                        link=FolderLinks(self.settings.base_url, self.settings.url_pattern)
                        if self.settings.base_url
                        else None,
                        problems=problems,
                    )
                )
            except (ValueError, OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                problems.append(f"{path}: skipped: {reason}")
            except (MemoryError, RecursionError) as exc:
                # One bad file never stops its folder.
                problems.append(f"{path}: skipped: too large or too deeply nested to read ({exc.__class__.__name__})")
        return SourceResult(tuple(found), problems=tuple(problems))


def read_article_file(
    path: Path,
    *,
    source: str,
    tz: Any,
    root: Path | None = None,
    require_date: bool = True,
    max_bytes: int = MAX_FILE_BYTES,
    link: FolderLinks | None = None,
    problems: list[str] | None = None,
) -> Article:
    """Read one article file of any supported format. Raises ValueError naming what is wrong.

    With ``require_date=False`` (tools that only look at the text, such as ``digest teaser``) an
    undated file is read too: its date is the file's modification time, marked as first seen.
    """
    suffix = path.suffix.lower()
    raw = _read_at_most(path, max_bytes)
    # HTML says its own encoding; Markdown and text files must be UTF-8.
    text = decode_document(raw).text if suffix in HTML_SUFFIXES else raw.decode("utf-8")
    undated = None if require_date else _file_time(path, tz)
    rel = path.relative_to(root).as_posix() if root else path.name
    fallback_id = f"file:{source}/{rel}"
    article = _read_text(text, suffix, path=path, source=source, tz=tz, fallback_id=fallback_id, undated=undated)
    if article.url is None and link is not None:
        # The id stays the file's, so setting base_url later does not make stored articles new.
        article = replace(article, url=link.url_for(rel, article.published))
    return _with_image(article, path, problems)


@dataclass(frozen=True)
class FolderLinks:
    """Where a folder's files are published: ``base_url`` joined with ``pattern`` (see
    digest.config.FOLDER_URL_FIELDS)."""

    base_url: str
    pattern: str = "{path}"

    def url_for(self, rel: str, published: datetime) -> str:
        path = rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel
        name = path.rsplit("/", 1)[-1]
        fields = {
            "path": quote(path),
            "name": quote(name),
            "slug": quote(_DATED_NAME.sub("", name) or name),
            "year": f"{published.year:04d}",
            "month": f"{published.month:02d}",
            "day": f"{published.day:02d}",
        }
        base = self.base_url if self.base_url.endswith("/") else self.base_url + "/"
        return urljoin(base, self.pattern.format(**fields).lstrip("/"))


_DATED_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}[-_]")


def _read_text(
    text: str, suffix: str, *, path: Path, source: str, tz: Any, fallback_id: str, undated: datetime | None
) -> Article:
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


def _read_at_most(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, or ValueError when it is larger than ``max_bytes`` (never read past that)."""
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        size = path.stat().st_size
        raise ValueError(
            f"{size / (1024 * 1024):.1f} MB, over the {max_bytes / (1024 * 1024):g} MB limit; "
            "raise max_file_mb for this source if the file is really an article"
        )
    return data


def _width(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 100_000:
        return value
    if isinstance(value, str) and value.strip().removesuffix("px").isdigit():
        return _width(int(value.strip().removesuffix("px")))
    raise ValueError(f"image_width: expected a width in pixels such as 320, got {value!r}")


#: Characters that have no place in an image address put into an e-mail's HTML.
_NOT_IN_URL = frozenset("\"'<>\\`")


def _usable_image_url(url: str) -> bool:
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c in _NOT_IN_URL for c in url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _with_image(article: Article, path: Path, problems: list[str] | None) -> Article:
    """The article with its image resolved against its URL and checked, and its width read from the
    local file's header when the image is a file beside the article; an image that cannot be used
    is dropped (with a line in ``problems``), so nothing is said about it later."""
    image = (article.image or "").strip()
    if not image:
        return article
    width = article.image_width
    if not urlsplit(image).scheme and not image.startswith("//"):
        local = path.parent / image.split("?", 1)[0].split("#", 1)[0]
        if width is None and local.is_file():
            width = file_image_width(local)
        if article.url is None:
            if problems is not None:
                problems.append(
                    f"{path}: image {image!r} is relative and the article has no url; "
                    "give the article a url or the source a base_url"
                )
            return replace(article, image=None, image_width=None)
        image = urljoin(article.url, image)
    elif image.startswith("//"):
        image = "https:" + image
    if not _usable_image_url(image):
        if problems is not None:
            problems.append(f"{path}: image {article.image!r} is not an http(s) address; it is left out")
        return replace(article, image=None, image_width=None)
    return replace(article, image=image, image_width=width)


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
        "image_width",
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
    # No title is fine (wire copy): readers see Article.display_title, the teaser needs none.
    title = normalise_space(str(meta.get("title") or ""))
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
        image_width=_width(meta.get("image_width")),
        tags=tuple(normalise_space(str(t)) for t in tags if str(t).strip()),
        section=normalise_space(str(meta["section"])) if meta.get("section") else None,
        language=str(meta.get("language") or meta.get("lang") or "") or None,
        body=body,
        origin=str(path),
    )
