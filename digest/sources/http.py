"""Polite fetching over HTTP with requests.

What a well-behaved feed reader owes the sites it reads, and what this module does:

- says who it is: a descriptive User-Agent with a contact URL, configurable (some sites block
  unknown fetchers; the fix is a User-Agent they accept, not hammering);
- asks only for what changed: conditional GET with the ETag and Last-Modified the site gave last
  time (RFC 9110 §13); a 304 answer means nothing is downloaded or parsed;
- accepts gzip (requests decodes it) and counts the *decoded* size against a cap, so neither a
  huge file nor a compression bomb is read into memory;
- follows redirects itself, so it knows when a chain of them is permanent (301, 308) and the
  source's stored URL should move;
- gives up in bounded time: connect and read timeouts, plus a deadline for the whole response so
  a server that trickles bytes cannot hold a worker;
- retries a bounded number of times on 429 and 5xx with exponential backoff, waiting as long as
  ``Retry-After`` asks (seconds or an HTTP date) up to a limit;
- waits a delay between two requests to the same host, and makes them one at a time; different
  hosts are fetched concurrently by the caller's bounded pool (see ``pipeline.ingest``).

The clock and the sleep function are parameters, so tests control time instead of sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict

from digest import __version__
from digest.errors import SourceError
from digest.neterrors import connect_failure
from digest.retry_after import retry_after_seconds
from digest.sources.encoding import charset_from_content_type

log = logging.getLogger(__name__)

USER_AGENT = f"digest/{__version__} (newsletter digest generator; +https://pypi.org/project/digest/)"
TIMEOUT = (10.0, 30.0)
MAX_BYTES = 10 * 1024 * 1024

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
PERMANENT_REDIRECTS = frozenset({301, 308})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


def default_user_agent(contact_url: str | None = None) -> str:
    """A User-Agent that names the program and where its operator can be reached."""
    return f"digest/{__version__} (newsletter digest generator; +{contact_url})" if contact_url else USER_AGENT


@dataclass(frozen=True)
class FetchPolicy:
    user_agent: str = USER_AGENT
    connect_timeout: float = TIMEOUT[0]
    read_timeout: float = TIMEOUT[1]
    # Wall-clock limit for one whole response, however slowly its bytes arrive.
    deadline: float = 120.0
    max_bytes: int = MAX_BYTES
    retries: int = 3
    backoff: float = 2.0
    # A Retry-After longer than this is not waited for: the source fails this run and is tried next run.
    max_retry_after: float = 300.0
    host_delay: float = 1.0
    max_redirects: int = 10


@dataclass(frozen=True)
class FetchResult:
    """A 200 with its body, or a 304 (``not_modified``) with none."""

    url: str
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=CaseInsensitiveDict)
    # Where a leading run of permanent redirects from the requested URL led, if anywhere.
    moved_to: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        return charset_from_content_type(self.headers.get("content-type"))


class FetchError(SourceError):
    """A URL could not be fetched. ``status`` is the last HTTP status, if any answer came."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class _HostGate:
    """One request at a time per host, at least ``host_delay`` apart (and later if the host said
    so with Retry-After)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_at = float("-inf")


def _host_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or ''}"


_STATUS_HINTS = {
    401: "the site wants a login; digest reads only public feeds",
    403: "the site refused the request; some sites block unknown fetchers: set user_agent for this source",
    404: "not found; check the URL",
    410: "the site says it is gone for good; remove the source",
}


class Fetcher:
    """Fetches URLs politely (see the module docstring). Safe to share between threads."""

    def __init__(
        self,
        policy: FetchPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or FetchPolicy()
        self.sleep = sleep
        self.clock = clock
        self._gates: dict[str, _HostGate] = {}
        self._gates_lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        # requests.Session is not documented as thread-safe: one per thread.
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            self._local.session = s
        return s

    def _gate(self, url: str) -> _HostGate:
        key = _host_key(url)
        with self._gates_lock:
            gate = self._gates.get(key)
            if gate is None:
                gate = self._gates[key] = _HostGate()
            return gate

    def get(
        self,
        url: str,
        *,
        source: str,
        etag: str | None = None,
        last_modified: str | None = None,
        user_agent: str | None = None,
        accept: str | None = None,
    ) -> FetchResult:
        """GET ``url``. Returns a 200 or a 304 result; raises :class:`FetchError` naming the source,
        the URL and the reason otherwise."""
        headers = {"User-Agent": user_agent or self.policy.user_agent}
        if accept:
            headers["Accept"] = accept
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        moved_to: str | None = None
        permanent_so_far = True
        for _hop in range(self.policy.max_redirects + 1):
            if urlsplit(current).scheme not in ("http", "https"):
                raise FetchError(
                    f"source {source!r}: {url} redirects to {current}, which is not an http(s) URL", url=url
                )
            status, resp_headers, body = self._get_with_retries(current, headers, source=source)
            if status in REDIRECTS:
                location = resp_headers.get("location")
                if not location:
                    raise FetchError(
                        f"source {source!r}: {current} answered HTTP {status} without a Location",
                        url=url,
                        status=status,
                    )
                nxt = urljoin(current, location.strip())
                if status in PERMANENT_REDIRECTS and permanent_so_far:
                    moved_to = nxt
                else:
                    permanent_so_far = False
                log.debug("source %r: %s redirects (%d) to %s", source, current, status, nxt)
                current = nxt
                continue
            return FetchResult(current, status, body, resp_headers, moved_to)
        raise FetchError(f"source {source!r}: {url} redirects more than {self.policy.max_redirects} times", url=url)

    def _get_with_retries(
        self, url: str, headers: dict[str, str], *, source: str
    ) -> tuple[int, CaseInsensitiveDict[str], bytes]:
        p = self.policy
        gate = self._gate(url)
        attempt = 0
        while True:
            with gate.lock:
                wait = gate.next_at - self.clock()
                if wait > 0:
                    self.sleep(wait)
                try:
                    status, resp_headers, body = self._get_once(url, headers, source=source)
                finally:
                    gate.next_at = self.clock() + p.host_delay
            if status not in RETRY_STATUSES:
                if status >= 400:
                    hint = _STATUS_HINTS.get(status)
                    raise FetchError(
                        f"source {source!r}: {url} answered HTTP {status}" + (f"; {hint}" if hint else ""),
                        url=url,
                        status=status,
                    )
                return status, resp_headers, body
            asked = retry_after_seconds(resp_headers.get("retry-after"), date_header=resp_headers.get("date"))
            if attempt >= p.retries:
                raise FetchError(
                    f"source {source!r}: {url} answered HTTP {status} after {attempt + 1} tries; will try again next run",
                    url=url,
                    status=status,
                )
            if asked is not None and asked > p.max_retry_after:
                raise FetchError(
                    f"source {source!r}: {url} answered HTTP {status} and asked to wait {asked:.0f} s (Retry-After), "
                    f"longer than the {p.max_retry_after:.0f} s limit; will try again next run",
                    url=url,
                    status=status,
                )
            delay = asked if asked is not None else p.backoff * (2**attempt)
            log.info("source %r: %s answered HTTP %d; retrying in %.1f s", source, url, status, delay)
            with gate.lock:
                gate.next_at = max(gate.next_at, self.clock() + delay)
            attempt += 1

    def _get_once(
        self, url: str, headers: dict[str, str], *, source: str
    ) -> tuple[int, CaseInsensitiveDict[str], bytes]:
        p = self.policy
        started = self.clock()
        try:
            with self._session().get(
                url, headers=headers, timeout=(p.connect_timeout, p.read_timeout), stream=True, allow_redirects=False
            ) as resp:
                resp_headers = resp.headers
                if resp.status_code != 200:
                    # Redirects, 304s and errors: their bodies are not needed.
                    return resp.status_code, resp_headers, b""
                limit_mib = f"{p.max_bytes / (1024 * 1024):g} MiB"
                declared = resp_headers.get("content-length", "")
                if declared.isdigit() and int(declared) > p.max_bytes:
                    raise FetchError(
                        f"source {source!r}: {url} is {int(declared) / (1024 * 1024):.1f} MiB, over the {limit_mib} limit; refused",
                        url=url,
                        status=200,
                    )
                chunks: list[bytes] = []
                size = 0
                raw = resp.raw
                while True:
                    # Per read, not per 64 KiB: a server trickling a byte a second cannot hold us
                    # past the deadline, and the socket never waits longer than the time left.
                    left = p.deadline - (self.clock() - started)
                    if left <= 0:
                        raise FetchError(
                            f"source {source!r}: {url} took longer than {p.deadline:g} s to send; gave up",
                            url=url,
                            status=200,
                        )
                    _wait_at_most(raw, min(p.read_timeout, left))
                    chunk = raw.read1(_CHUNK, decode_content=True)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > p.max_bytes:
                        raise FetchError(
                            f"source {source!r}: {url} is larger than the {limit_mib} limit; refused",
                            url=url,
                            status=200,
                        )
                    chunks.append(chunk)
                return 200, resp_headers, b"".join(chunks)
        except (requests.Timeout, urllib3.exceptions.TimeoutError):
            if self.clock() - started >= p.deadline:
                raise FetchError(
                    f"source {source!r}: {url} took longer than {p.deadline:g} s to send; gave up", url=url
                ) from None
            raise FetchError(
                f"source {source!r}: {url} did not answer within {p.read_timeout:g} s (timed out)", url=url
            ) from None
        except requests.ConnectionError as exc:
            reason = exc.args[0] if exc.args else exc
            if "timed out" in str(reason).lower():
                # requests reports a read timeout in the middle of a body as a ConnectionError.
                raise FetchError(
                    f"source {source!r}: {url} stopped sending for {p.read_timeout:g} s (timed out)", url=url
                ) from None
            raise FetchError(
                f"source {source!r}: cannot connect to {url}: {connect_failure(exc, fallback=_short_reason(reason))}",
                url=url,
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise FetchError(
                f"source {source!r}: {url} broke off while sending: {_short_reason(exc)}", url=url, status=200
            ) from None
        except requests.RequestException as exc:
            raise FetchError(
                f"source {source!r}: cannot fetch {url}: {exc.__class__.__name__}: {_short_reason(exc)}", url=url
            ) from None


def _wait_at_most(raw: urllib3.HTTPResponse, seconds: float) -> None:
    """Make the response's next socket read give up after ``seconds``."""
    conn = raw.connection
    sock = getattr(conn, "sock", None) if conn is not None else None
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _short_reason(reason: object) -> str:
    """urllib3's reasons nest ("HTTPConnectionPool(...): Max retries exceeded ... (Caused by X)");
    keep the innermost cause, on one line."""
    text = str(reason)
    if "Caused by " in text:
        text = text.rsplit("Caused by ", 1)[1].rstrip(")")
    return " ".join(text.split())


_default: Fetcher | None = None


def default_fetcher() -> Fetcher:
    """A process-wide fetcher with the default policy, for sources used outside the pipeline."""
    global _default
    if _default is None:
        _default = Fetcher()
    return _default
