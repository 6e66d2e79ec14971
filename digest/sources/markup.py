"""Markdown with YAML front matter, and HTML fragments, turned into clean body blocks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

from digest.models import Block, BlockKind
from digest.text import clean_text, normalise_space

_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_EMPH = re.compile(r"(\*\*|__|\*|_|~~|`)(?=\S)(.+?)(?<=\S)\1")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Return (front matter, body). Raises ValueError on front matter that is not a YAML mapping."""
    m = _FRONT.match(text.lstrip("\ufeff"))
    if not m:
        return {}, text
    try:
        data = _bounded_yaml(m.group(1)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise ValueError(f"front matter is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ValueError("front matter must be a mapping of keys to values")
    return data, text[m.end() :]


#: Front matter is a handful of keys: more values than this (aliases counted as often as they
#: are used), or deeper nesting, is not an article's metadata but an attack (a "billion laughs").
MAX_FRONT_MATTER_NODES = 10_000
MAX_FRONT_MATTER_DEPTH = 32


def _bounded_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses, before building anything, a document whose aliases would
    expand to more than MAX_FRONT_MATTER_NODES values or that nests deeper than MAX_FRONT_MATTER_DEPTH
    (a self-referencing alias counts as endlessly deep)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}

        def expanded(n: yaml.Node, depth: int) -> int:
            if depth > MAX_FRONT_MATTER_DEPTH:
                raise ValueError(f"front matter nests deeper than {MAX_FRONT_MATTER_DEPTH} levels; refused")
            if id(n) in sizes:
                return sizes[id(n)]
            size = 1
            if isinstance(n, yaml.SequenceNode):
                size += sum(expanded(child, depth + 1) for child in n.value)
            elif isinstance(n, yaml.MappingNode):
                size += sum(expanded(k, depth + 1) + expanded(v, depth + 1) for k, v in n.value)
            if size > MAX_FRONT_MATTER_NODES:
                raise ValueError(
                    f"front matter expands to more than {MAX_FRONT_MATTER_NODES} values (YAML aliases); refused"
                )
            sizes[id(n)] = size
            return size

        expanded(node, 0)
        return loader.construct_document(node)
    except RecursionError:
        raise ValueError("front matter nests too deeply; refused") from None
    finally:
        loader.dispose()


def _inline(text: str) -> str:
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    for _ in range(3):
        text = _EMPH.sub(r"\2", text)
    return clean_text(text)


def markdown_blocks(text: str) -> tuple[Block, ...]:
    """Paragraphs and headings of a Markdown body, inline markup removed."""
    blocks: list[Block] = []
    para: list[str] = []
    in_fence = False

    def flush() -> None:
        if para:
            joined = _inline(" ".join(para))
            if joined:
                blocks.append(Block(joined, "p"))
            para.clear()

    for raw in text.splitlines():
        line = raw.rstrip()
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            flush()
            continue
        if in_fence:
            continue
        if not line.strip() or _RULE.match(line):
            flush()
            continue
        h = _HEADING.match(line)
        if h:
            flush()
            title = _inline(h.group(2))
            if title:
                blocks.append(Block(title, "h"))
            continue
        if _LIST_ITEM.match(line):
            flush()
            para.append(_LIST_ITEM.sub("", line))
            flush()
            continue
        para.append(line.lstrip("> ").strip() if line.lstrip().startswith(">") else line.strip())
    flush()
    return tuple(blocks)


_BLOCK_TAGS = {"p", "li", "blockquote", "pre", "dd", "dt", "td", "th"}
_HEAD_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# Not prose: code and furniture, and captions (which describe a picture, and must never become
# the lead paragraph a teaser is drawn from).
_SKIP_TAGS = {
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "form",
    "nav",
    "iframe",
    "button",
    "figcaption",
    "object",
    "video",
    "audio",
}
_CONTAINER_TAGS = {
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "figure",
    "ul",
    "ol",
    "table",
    "tr",
    "tbody",
    "thead",
    "dl",
    "center",
}
# Stands in for <br> while text is gathered: two of them in a row end a paragraph.
_BR = "\u2028"
_BR_BREAK = re.compile(_BR + r"[\s" + _BR + r"]*" + _BR)


def text_blocks(text: str) -> tuple[Block, ...]:
    """Paragraphs of plain text: blank lines separate them."""
    if not text:
        return ()
    paras = (normalise_space(p) for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")))
    return tuple(Block(p) for p in paras if p)


def html_blocks(fragment: str) -> tuple[Block, ...]:
    """Paragraphs and headings of an HTML fragment in reading order: no tags, entities decoded
    once (by the parser), whitespace normalised. Loose text between blocks is a paragraph of its
    own, and two ``<br>`` in a row end one (old feeds write paragraphs that way)."""
    import lxml.html
    from lxml import etree

    if not fragment or not fragment.strip():
        return ()
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        text = clean_text(fragment)
        return (Block(text),) if text else ()
    blocks: list[Block] = []
    loose: list[str] = []

    def add(text: str, kind: BlockKind = "p") -> None:
        text = normalise_space(text)
        if text:
            blocks.append(Block(text, kind))

    def flush_loose() -> None:
        for part in _BR_BREAK.split("".join(loose)):
            add(part)
        loose.clear()

    def walk(el: Any) -> None:
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if tag in _SKIP_TAGS or not tag:
            pass
        elif tag in _HEAD_TAGS or tag in _BLOCK_TAGS:
            flush_loose()
            has_block_child = any(
                isinstance(c.tag, str) and (c.tag in _BLOCK_TAGS or c.tag in _HEAD_TAGS or c.tag in _CONTAINER_TAGS)
                for c in el
            )
            if has_block_child or el.find(".//br") is not None:
                if el.text:
                    loose.append(el.text)
                for child in el:
                    walk(child)
                if tag in _HEAD_TAGS:
                    text = "".join(loose).replace(_BR, " ")
                    loose.clear()
                    add(text, "h")
                else:
                    flush_loose()
            else:
                add(_text_without_skipped(el), "h" if tag in _HEAD_TAGS else "p")
        elif tag == "br":
            loose.append(_BR)
        elif tag in _CONTAINER_TAGS:
            flush_loose()
            if el.text:
                loose.append(el.text)
            for child in el:
                walk(child)
            flush_loose()
        else:
            if el.text:
                loose.append(el.text)
            for child in el:
                walk(child)
        if el.tail:
            loose.append(el.tail)

    if root.text:
        loose.append(root.text)
    for child in root:
        walk(child)
    flush_loose()
    return tuple(blocks)


def _text_without_skipped(el: Any) -> str:
    parts: list[str] = []

    def gather(node: Any) -> None:
        tag = node.tag.lower() if isinstance(node.tag, str) else ""
        if tag and tag not in _SKIP_TAGS:
            if node.text:
                parts.append(node.text)
            for child in node:
                gather(child)
        if node is not el and node.tail:
            parts.append(node.tail)

    gather(el)
    return "".join(parts)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def without_title(body: Sequence[Block], title: str) -> tuple[Block, ...]:
    """The body without a leading heading that only repeats the title (pages and feed content
    often open with the headline as an <h1>)."""
    if body and body[0].kind == "h" and _words(body[0].text) == _words(title):
        return tuple(body[1:])
    return tuple(body)
