"""The sections of the config file, each a typed model that rejects unknown keys; the
``[delivery]`` section and its backends' tables are in :mod:`digest.config.delivery`."""

from __future__ import annotations

from collections.abc import Iterable
from email.utils import parseaddr
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_CONFIG = Path("config/digest.toml")
CONFIG_ENV = "DIGEST_CONFIG"


class ConfigSection(BaseModel):
    """A table of the config file: unknown keys are errors; the values, once read, are fixed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def one_of(value: str, names: Iterable[str]) -> str:
    """``value`` if it is one of ``names`` (a registry's keys); the error lists them."""
    known = list(names)
    if value not in known:
        listed = ", ".join(repr(n) for n in known[:-1]) + f" or {known[-1]!r}" if len(known) > 1 else repr(known[0])
        raise ValueError(f"expected {listed}, got {value!r}")
    return value


def _check_address(value: str, *, display_name: bool) -> str:
    name, addr = parseaddr(value)
    if "@" not in addr or addr.startswith("@") or addr.endswith("@") or " " in addr:
        form = '"Name <address@example.org>"' if display_name else '"address@example.org"'
        raise ValueError(f"expected an e-mail address like {form}, got {value!r}")
    return value


class NewsletterSettings(ConfigSection):
    # The newsletter's name: the e-mail's header (unless logo_url) and the subject's start.
    title: str
    # The From address, with a display name: "Name <address@example.org>".
    sender: str
    # Where replies go, when not to the sender address.
    reply_to: str | None = None
    # The newsletter's web site; the default unsubscribe and archive links live under it.
    site_url: str
    # An IANA time zone ("Europe/London"): the schedule and the dates shown are in it.
    timezone: str = "UTC"
    # The sender's postal address, shown in every footer (anti-spam laws ask for one).
    postal_address: str
    # The language of the e-mail (its lang attribute; also the teasers' sentence rules).
    language: str = "en"
    # One line about the newsletter, used in the footer ("You receive <description> as ...").
    description: str | None = None
    # The one-click unsubscribe page; default: <site_url>/unsubscribe (digest serve answers it).
    unsubscribe_url: str | None = None
    # An address for mailto: unsubscribes in the List-Unsubscribe header.
    unsubscribe_mailto: str | None = None
    # Where the web copies of past issues live; default: <site_url>/archive.
    archive_url: str | None = None
    # The header shows this image (hosted: e-mail cannot carry it) instead of the title text.
    logo_url: str | None = None
    # The logo's alt text; default: the title.
    logo_alt: str | None = None
    # The logo's width in pixels (16-552).
    logo_width: int = Field(180, ge=16, le=552)
    # An editor's note above the articles: inline text, or a file read when the issue is built
    # (blank lines separate paragraphs).
    editor_note: str | None = None
    # A file holding the editor's note, read at each build (instead of editor_note).
    editor_note_file: Path | None = None
    # Who gets the [PREVIEW] before each slot when schedule.review_hours is set.
    editors: list[str] = []

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        return _check_address(v, display_name=True)

    @field_validator("reply_to", "unsubscribe_mailto")
    @classmethod
    def _reply_to(cls, v: str | None) -> str | None:
        return None if v is None else _check_address(v, display_name=False)

    @field_validator("editors")
    @classmethod
    def _editors(cls, v: list[str]) -> list[str]:
        return [_check_address(e, display_name=False) for e in v]

    @field_validator("site_url", "unsubscribe_url", "archive_url", "logo_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError(f"expected an http(s) URL, got {v!r}")
        return None if v is None else v.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'unknown time zone {v!r}; use an IANA name such as "Europe/London"') from None
        return v

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]

    @property
    def sender_domain(self) -> str:
        return self.sender_address.rpartition("@")[2]

    @property
    def unsubscribe_base(self) -> str:
        return self.unsubscribe_url or f"{self.site_url}/unsubscribe"

    def unsubscribe_link(self, token: str) -> str:
        """The one-click unsubscribe URL for a token (the base may already carry a query)."""
        base = self.unsubscribe_base
        return f"{base}{'&' if '?' in base else '?'}token={token}"

    @property
    def archive_base(self) -> str:
        return self.archive_url or f"{self.site_url}/archive"


#: The ``[[sources]] kind`` values. digest.sources.registry maps each to its source class (the
#: config sits below the sources and does not import them; a test keeps the two equal).
SOURCE_KINDS = ("feed", "page", "folder")


class SourceSettings(ConfigSection):
    # A unique name for the source; articles and health are recorded under it.
    name: str
    # "feed", "page" or "folder" (SOURCE_KINDS).
    kind: str
    # The feed's or page's http(s) URL (kind feed or page).
    url: str | None = None
    # The folder of article files (kind folder).
    path: Path | None = None
    # A feed whose items carry only a stub: fetch each new item's page and extract the article.
    fetch_full: bool = False
    # For a site that refuses the default User-Agent ([fetch] user_agent applies otherwise).
    user_agent: str | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        return one_of(v, SOURCE_KINDS)

    @model_validator(mode="after")
    def _one_location(self) -> SourceSettings:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of url or path")
        if self.kind == "folder" and self.path is None:
            raise ValueError("a folder source needs path, not url")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        if self.fetch_full and self.kind != "feed":
            raise ValueError(f"fetch_full applies to feed sources only, not kind = {self.kind!r}")
        if self.user_agent is not None and not self.user_agent.strip():
            raise ValueError("user_agent is empty; remove it to use [fetch] user_agent")
        return self


class FetchSettings(ConfigSection):
    """How sources are fetched over HTTP (see digest.sources.http)."""

    # Default: "digest/<version> (newsletter digest generator; +<newsletter.site_url>)".
    user_agent: str | None = None
    # Seconds to wait for a server to answer (and between two chunks of a response).
    timeout: float = Field(30.0, gt=0)
    # Responses larger than this many megabytes are refused.
    max_response_mb: float = Field(10.0, gt=0)
    # Seconds between two requests to one host.
    host_delay: float = Field(1.0, ge=0)
    # Sources read at the same time (requests to one host stay one at a time).
    workers: int = Field(8, ge=1, le=64)
    # Retries of a request that failed with a timeout, 429 or 5xx, with backoff.
    retries: int = Field(3, ge=0, le=10)
    # A Retry-After longer than this many seconds is not waited for (the source fails this time).
    max_retry_after: float = Field(300.0, ge=0)


class SelectionSettings(ConfigSection):
    # An issue carries articles published in this many days before its slot.
    window_days: int = Field(7, ge=1)
    # At most this many articles per issue (the newest first).
    max_articles: int = Field(10, ge=1)
    # An issue with fewer new articles is skipped (a thin week); 0 never skips.
    min_articles: int = Field(1, ge=0)


class TeaserSettings(ConfigSection):
    # A teaser is cut at a word to at most this many characters.
    max_chars: int = Field(220, ge=40)


class ScheduleSettings(ConfigSection):
    # When issues go out: a five-field cron expression in newsletter.timezone ("0 8 * * mon": Mondays 08:00).
    cron: str = "0 8 * * mon"
    # A slot missed (the scheduler was down) is still sent if caught up within this many hours.
    misfire_grace_hours: float = Field(6.0, ge=0)
    # Build the issue this many hours before its slot and send it as [PREVIEW] to
    # newsletter.editors; it goes out at the slot unless `digest hold ISSUE`. 0: no review.
    review_hours: float = Field(0.0, ge=0)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v, timezone="UTC")
        except ValueError as exc:
            raise ValueError(
                f'invalid cron expression {v!r} ({exc}); expected five fields like "0 8 * * mon"'
            ) from None
        return v


class SubscriberSettings(ConfigSection):
    # A CSV of subscribers (columns email, name), re-imported on every run and send: new addresses are added, known ones keep their status (an unsubscribe is never undone).
    csv: Path | None = None


class StateSettings(ConfigSection):
    # Where digest keeps its state (articles, issues, deliveries): an SQLAlchemy URL; default: SQLite at var/digest.sqlite3 beside the config.
    url: str | None = None


class TemplateSettings(ConfigSection):
    # A folder of your templates; each file there overrides the default theme's file of the same name (see docs/templates.md).
    path: Path | None = None


class LinkSettings(ConfigSection):
    """Campaign tags on article links, and the opt-in open-tracking pixel."""

    # Add utm_* campaign tags to article links.
    utm: bool = False
    # The utm_source value.
    utm_source: str = "newsletter"
    # The utm_medium value.
    utm_medium: str = "email"
    # {issue} is the issue key, {position} the article's place in the issue (1, 2, ...).
    utm_campaign: str = "{issue}"
    # The utm_content value ({issue} and {position} work here too); none when not set.
    utm_content: str | None = None
    # Links to these domains (and their subdomains) are left untagged.
    skip_domains: list[str] = []
    # An image URL loaded by each opened copy; no pixel is added unless this is set.
    tracking_pixel_url: str | None = None

    @field_validator("utm_source", "utm_medium", "utm_campaign", "utm_content")
    @classmethod
    def _placeholders(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            v.format(issue="x", position=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"unknown placeholder or stray brace in {v!r} ({exc}); use {{issue}} or {{position}}"
            ) from None
        return v

    @field_validator("skip_domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        return [d.strip().lower().lstrip(".") for d in v if d.strip()]

    @field_validator("tracking_pixel_url")
    @classmethod
    def _pixel(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("https://"):
            raise ValueError(f"expected an https URL, got {v!r}")
        return v


class RenderSettings(ConfigSection):
    """Size guard: Gmail clips a message whose HTML passes about 102 KB."""

    # A build warns when the HTML passes this many bytes.
    warn_html_bytes: int = Field(90_000, ge=1000)
    # A build fails (or drops trailing articles) when the HTML passes this many bytes.
    max_html_bytes: int = Field(102_000, ge=1000)
    # Drop articles from the end of the issue until the HTML fits, instead of failing the build.
    drop_trailing_articles: bool = False

    @model_validator(mode="after")
    def _order(self) -> RenderSettings:
        if self.warn_html_bytes > self.max_html_bytes:
            raise ValueError(
                f"warn_html_bytes ({self.warn_html_bytes}) must not exceed max_html_bytes ({self.max_html_bytes})"
            )
        return self


class SecuritySettings(ConfigSection):
    # The environment variable holding the secret that signs unsubscribe and preview tokens.
    secret_env: str = "DIGEST_SECRET"
