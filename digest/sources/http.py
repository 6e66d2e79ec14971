"""Fetching over HTTP with requests: a descriptive User-Agent, timeouts and a size cap."""

from __future__ import annotations

import requests

from digest import __version__
from digest.errors import SourceError

USER_AGENT = f"digest/{__version__} (newsletter digest generator)"
TIMEOUT = (10.0, 30.0)
MAX_BYTES = 20 * 1024 * 1024


def fetch(url: str, *, source: str, session: requests.Session | None = None) -> tuple[bytes, dict[str, str]]:
    """GET a URL; returns (body, headers). Raises SourceError naming the source and the reason."""
    s = session or requests.Session()
    try:
        with s.get(url, headers={"User-Agent": USER_AGENT}, timeout=TIMEOUT, stream=True) as resp:
            if resp.status_code >= 400:
                raise SourceError(f"source {source!r}: {url} answered HTTP {resp.status_code} {resp.reason}")
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_content(64 * 1024):
                size += len(chunk)
                if size > MAX_BYTES:
                    raise SourceError(f"source {source!r}: {url} is larger than {MAX_BYTES // (1024 * 1024)} MiB; refused")
                chunks.append(chunk)
            return b"".join(chunks), dict(resp.headers)
    except requests.RequestException as exc:
        raise SourceError(f"source {source!r}: cannot fetch {url}: {exc.__class__.__name__}: {exc}") from None
