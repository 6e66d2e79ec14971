"""Links in the e-mail: which URLs may appear at all, and campaign (UTM) tags on article links."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from digest.config import LinkSettings

# Longer URLs are a sign of garbage (or of an attack on a client's URL parser); browsers and
# mail clients cope with 2,000 characters everywhere.
MAX_URL_CHARS = 2048
_SCHEMES = ("http", "https")
# Characters a well-formed URL carries only percent-encoded (RFC 3986); seen raw, they are an
# attempt to break out of an attribute, or a backslash that browsers would read as a slash.
_NEVER_IN_URL = frozenset('<>"`\\')


def safe_url(url: str | None) -> str | None:
    """The URL when it may go into an ``href`` or ``src``, else None (the link is dropped).

    Only absolute http(s) URLs with a host pass: ``javascript:``, ``data:``, relative URLs, and any
    URL carrying whitespace, control characters (a CR/LF could break a header or a text line) or
    characters that must be percent-encoded are refused.
    """
    if not url:
        return None
    url = url.strip()
    if len(url) > MAX_URL_CHARS or any(
        c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c in _NEVER_IN_URL for c in url
    ):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return None
    if parts.scheme.lower() not in _SCHEMES or not parts.hostname:
        return None
    return url


def _host_skipped(host: str, skip_domains: list[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in skip_domains)


def tag_url(url: str, links: LinkSettings, *, issue: str, position: int | None = None) -> str:
    """``url`` with utm_* parameters added, when tagging is on and the domain is not skipped.

    Existing query parameters are kept byte for byte, and a utm_* parameter the URL already has
    (the publisher chose it) is not overridden.
    """
    if not links.utm:
        return url
    parts = urlsplit(url)
    if not parts.hostname or _host_skipped(parts.hostname, links.skip_domains):
        return url
    present = {k for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    fields = {"issue": issue, "position": "" if position is None else position}
    wanted = {
        "utm_source": links.utm_source,
        "utm_medium": links.utm_medium,
        "utm_campaign": links.utm_campaign,
        "utm_content": links.utm_content,
    }
    add = []
    for key, template in wanted.items():
        if template is None or key in present:
            continue
        value = template.format(**fields)
        if value:
            add.append((key, value))
    if not add:
        return url
    query = parts.query + ("&" if parts.query else "") + urlencode(add)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
