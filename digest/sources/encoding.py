"""Bytes of a feed or a page → text, whatever the publisher claimed the encoding was.

Real feeds lie about their encoding: a UTF-8 file declares ISO-8859-1, a Latin-1 file declares
nothing (so XML says UTF-8), a server labels everything ``charset=ISO-8859-1``. The order below is
the one that survives those lies:

1. a byte-order mark, which cannot be there by accident;
2. valid UTF-8 — multi-byte UTF-8 sequences practically never occur by chance in text written in a
   single-byte encoding, so a document that decodes as UTF-8 *is* UTF-8, whatever it declares
   (miniflux does the same for mislabelled prologs);
3. the charset of the HTTP Content-Type (RFC 7303 puts it above the document's own declaration);
4. the document's declaration: ``<?xml encoding=...?>`` or an HTML ``<meta charset>``, looked for
   in the whole head, not only the first 1024 bytes;
5. windows-1252, the encoding of most undeclared legacy text.

Labels are read the way browsers read them (WHATWG Encoding): ``ISO-8859-1`` and ``US-ASCII``
mean windows-1252, a superset that also has the euro sign and curly quotes.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_XML_DECL = re.compile(rb"""\A\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_HEAD_END = re.compile(rb"</head\s*>|<body[\s>]", re.I)
# How far to look for a <meta charset> when the document has no </head>.
_META_SCAN = 64 * 1024

_WHATWG_ALIASES = {
    "iso-8859-1": "windows-1252",
    "iso8859-1": "windows-1252",
    "latin-1": "windows-1252",
    "latin1": "windows-1252",
    "l1": "windows-1252",
    "us-ascii": "windows-1252",
    "ascii": "windows-1252",
    "iso-8859-9": "windows-1254",
    "iso-8859-11": "windows-874",
    "tis-620": "windows-874",
    "x-mac-roman": "mac-roman",
    "gb2312": "gb18030",
    "gbk": "gb18030",
}
FALLBACK = "windows-1252"


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str
    # Where the encoding came from: bom | utf-8 | http | declared | fallback
    reason: str


def codec_for(label: str | None) -> str | None:
    """The Python codec for an encoding label, or None when the label is unknown."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _WHATWG_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def charset_from_content_type(value: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header, if any."""
    if not value:
        return None
    for part in value.split(";")[1:]:
        key, _, val = part.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            return val.strip().strip("\"'")
    return None


def declared_encoding(data: bytes) -> str | None:
    """The encoding a document names for itself: its XML declaration or an HTML meta charset."""
    m = _XML_DECL.match(data[:1024])
    if m:
        return m.group(1).decode("ascii")
    end = _HEAD_END.search(data, 0, _META_SCAN)
    m = _META_CHARSET.search(data, 0, end.start() if end else _META_SCAN)
    return m.group(1).decode("ascii") if m else None


def decode_document(data: bytes, http_charset: str | None = None) -> Decoded:
    """Decode a feed or an HTML page to text (see the module docstring for the order)."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            return Decoded(
                data[len(bom) :].decode(enc, errors="replace"), enc.removesuffix("-le").removesuffix("-be"), "bom"
            )
    try:
        return Decoded(data.decode("utf-8"), "utf-8", "utf-8")
    except UnicodeDecodeError:
        pass
    for label, reason in ((http_charset, "http"), (declared_encoding(data), "declared")):
        codec = codec_for(label)
        # A label of UTF-8 (or UTF-16 without a BOM) is already known to be wrong here.
        if codec and not codec.startswith(("utf-8", "utf-16", "utf-32")):
            return Decoded(data.decode(codec, errors="replace"), codec, reason)
    return Decoded(data.decode(FALLBACK, errors="replace"), FALLBACK, "fallback")


def xml_as_utf8(text: str) -> bytes:
    """UTF-8 bytes of an XML document, its declaration saying so, for parsers that re-read it."""
    body = text.lstrip("\ufeff")
    m = re.match(r"""\s*<\?xml[^>]*?\?>""", body)
    if m:
        decl = re.sub(r"""\bencoding\s*=\s*["'][^"']*["']""", 'encoding="utf-8"', m.group(0))
        body = decl + body[m.end() :]
    return body.encode("utf-8")
