"""The sections of the config file, each a typed model that rejects unknown keys; the
``[delivery]`` section and its backends' tables are in :mod:`digest.config.delivery`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from email.utils import parseaddr
from pathlib import Path
from string import Formatter
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

DEFAULT_CONFIG = Path("config/digest.toml")
CONFIG_ENV = "DIGEST_CONFIG"


class ConfigSection(BaseModel):
    """A table of the config file: unknown keys are errors; the values, once read, are fixed.

    Types are strict (``window_days = "7"`` is refused, not read as 7: a quoted number is
    usually a mistake worth seeing) and numbers finite (``inf`` and ``nan`` are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _usable_path(value: Path) -> Path:
    if "\x00" in str(value):
        raise ValueError(f"path {str(value)!r} contains a NUL character")
    return value


#: A path in the config file: a TOML string, made absolute against the config file's folder.
ConfigPath = Annotated[Path, Field(strict=False), AfterValidator(_usable_path)]

# Characters that never belong in a URL we put in a header or an attribute: controls (CR/LF
# would split a List-Unsubscribe header), spaces, quotes, angle brackets, backslash, backtick.
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f\"'<>\\`]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_url(value: str, *, schemes: tuple[str, ...] = ("https", "http")) -> str:
    """``value`` if it is an absolute URL with one of ``schemes``, a host, a valid port and no
    character that would break a header or an HTML attribute; else a ValueError that says why."""
    example = f"{schemes[0]}://example.org"
    bad = _URL_UNSAFE.search(value)
    if bad:
        raise ValueError(
            f"URL {value!r} contains {bad.group()!r}; spaces, control characters, quotes and <> "
            "are not allowed (percent-encode them)"
        )
    parts = urlsplit(value)
    listed = " or ".join(f"{s}://" for s in schemes)
    if parts.scheme.lower() not in schemes:
        raise ValueError(f"expected a URL starting with {listed}, got {value!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        raise ValueError(f"URL {value!r} has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"URL {value!r} has no host; expected a URL like {example!r}")
    return value


def single_line(value: str, what: str) -> str:
    """``value`` if it holds no control character (a CR/LF would split the header it goes into)."""
    if _CONTROL.search(value):
        raise ValueError(f"{what} {value!r} contains a control character (a line break?); give it on one line")
    return value


def one_of(value: str, names: Iterable[str]) -> str:
    """``value`` if it is one of ``names`` (a registry's keys); the error lists them."""
    known = list(names)
    if value not in known:
        listed = ", ".join(repr(n) for n in known[:-1]) + f" or {known[-1]!r}" if len(known) > 1 else repr(known[0])
        raise ValueError(f"expected {listed}, got {value!r}")
    return value


def _check_address(value: str, *, display_name: bool) -> str:
    single_line(value, "address")
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
    # Where readers of the web archive can sign up (default: site_url).
    subscribe_url: str | None = None
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
    editor_note_file: ConfigPath | None = None
    # Who gets the [PREVIEW] before each slot when schedule.review_hours is set.
    editors: list[str] = []
    # Templates' {{ recipient_name }} for a subscriber without a name ("Dear reader").
    name_fallback: str = "reader"

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        return single_line(v, "title")

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

    @field_validator("site_url", "unsubscribe_url", "archive_url", "subscribe_url", "logo_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_url(v).rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        # A folder of the zone database ("Europe") is an OSError, not ZoneInfoNotFoundError.
        except (ZoneInfoNotFoundError, ValueError, OSError):
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

    def recipient_name(self, name: str | None) -> str:
        """What a template's ``recipient_name`` becomes for a subscriber: their name on one line,
        or ``name_fallback`` when they gave none."""
        single = " ".join((name or "").split())
        return single or self.name_fallback

    @property
    def archive_base(self) -> str:
        return self.archive_url or f"{self.site_url}/archive"

    @property
    def subscribe_link(self) -> str:
        return self.subscribe_url or self.site_url


#: The ``[[sources]] kind`` values. digest.sources.registry maps each to its source class (the
#: config sits below the sources and does not import them; a test keeps the two equal).
SOURCE_KINDS = ("feed", "page", "folder")


#: The placeholders of a folder source's ``url_pattern``: the file's path in the folder without its
#: suffix, its name without the suffix, that name without a leading YYYY-MM-DD- date, and the date.
FOLDER_URL_FIELDS = ("path", "name", "slug", "year", "month", "day")


class SourceSettings(ConfigSection):
    # A unique name for the source; articles and health are recorded under it.
    name: str
    # "feed", "page" or "folder" (SOURCE_KINDS).
    kind: str
    # The feed's or page's http(s) URL (kind feed or page).
    url: str | None = None
    # The folder of article files (kind folder).
    path: ConfigPath | None = None
    # A feed whose items carry only a stub: fetch each new item's page and extract the article.
    fetch_full: bool = False
    # For a site that refuses the default User-Agent ([fetch] user_agent applies otherwise).
    user_agent: str | None = None
    # Folder sources: a file larger than this is skipped (and reported), never read whole.
    max_file_mb: float = Field(5.0, gt=0, allow_inf_nan=False)
    # Folder sources: where a file without its own url is published, so it still links somewhere
    # (and its relative images resolve): base_url joined with url_pattern, whose placeholders are
    # FOLDER_URL_FIELDS.
    base_url: str | None = None
    # How a folder file's address is made under base_url: {path} (its path in the folder without
    # its suffix), {name}, {slug} (the name without a leading YYYY-MM-DD-), {year}, {month}, {day}.
    url_pattern: str = "{path}"

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        return one_of(v, SOURCE_KINDS)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_url(v)

    @model_validator(mode="after")
    def _one_location(self) -> SourceSettings:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of url or path")
        if self.kind == "folder" and self.path is None:
            raise ValueError("a folder source needs path, not url")
        if self.fetch_full and self.kind != "feed":
            raise ValueError(f"fetch_full applies to feed sources only, not kind = {self.kind!r}")
        if self.user_agent is not None and not self.user_agent.strip():
            raise ValueError("user_agent is empty; remove it to use [fetch] user_agent")
        if self.base_url is not None:
            if self.kind != "folder":
                raise ValueError(f"base_url applies to folder sources only, not kind = {self.kind!r}")
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"[\s\"'<>\\]", self.base_url):
                raise ValueError(f"base_url must be an http(s) URL with a host, got {self.base_url!r}")
        try:
            fields = {name for _text, name, _spec, _conv in Formatter().parse(self.url_pattern) if name is not None}
        except ValueError as exc:
            raise ValueError(f"url_pattern {self.url_pattern!r}: {exc}") from None
        unknown = sorted(fields - set(FOLDER_URL_FIELDS))
        if unknown:
            raise ValueError(
                f"url_pattern {self.url_pattern!r}: unknown placeholder {{{unknown[0]}}}; use "
                + ", ".join(f"{{{f}}}" for f in FOLDER_URL_FIELDS)
            )
        if self.user_agent is not None:
            single_line(self.user_agent, "user_agent")
        return self


class FetchSettings(ConfigSection):
    """How sources are fetched over HTTP (see digest.sources.http)."""

    # Default: "digest/<version> (newsletter digest generator; +<newsletter.site_url>)".
    user_agent: str | None = None
    # Seconds to wait for a server to answer (and between two chunks of a response).
    timeout: float = Field(30.0, gt=0, le=3600)
    # Wall-clock limit for one whole response, however slowly it arrives (default: 4 × timeout,
    # at least 60 s).
    deadline: float | None = Field(None, gt=0, le=86400)
    # Responses larger than this many megabytes are refused.
    max_response_mb: float = Field(10.0, gt=0, le=1024)
    # Seconds between two requests to one host.
    host_delay: float = Field(1.0, ge=0, le=3600)
    # Sources read at the same time (requests to one host stay one at a time).
    workers: int = Field(8, ge=1, le=64)
    # Retries of a request that failed with a timeout, 429 or 5xx, with backoff.
    retries: int = Field(3, ge=0, le=10)
    # A Retry-After longer than this many seconds is not waited for (the source fails this time).
    max_retry_after: float = Field(300.0, ge=0, le=86400)

    @field_validator("user_agent")
    @classmethod
    def _agent(cls, v: str | None) -> str | None:
        return None if v is None else single_line(v, "user_agent")


class SelectionSettings(ConfigSection):
    # At most ten years back (a larger window is a typo, and would reach before year 1).
    window_days: int = Field(7, ge=1, le=3660)
    # At most this many articles per issue (the newest first).
    max_articles: int = Field(10, ge=1, le=1000)
    # An issue with fewer new articles is skipped (a thin week); 0 never skips.
    min_articles: int = Field(1, ge=0, le=1000)


class TeaserSettings(ConfigSection):
    # A teaser is cut at a word to at most this many characters.
    max_chars: int = Field(220, ge=40, le=100_000)


_HOURS_IN_A_YEAR = 24 * 366


class ScheduleSettings(ConfigSection):
    # Five crontab fields in newsletter.timezone; it must fire at least once in every year
    # (February 30th, or the 1st of January only on a Monday, is refused).
    cron: str = "0 8 * * mon"
    # A slot missed (the scheduler was down) is still sent if caught up within this many hours.
    misfire_grace_hours: float = Field(6.0, ge=0, le=_HOURS_IN_A_YEAR)
    # Build the issue this many hours before its slot and send it as [PREVIEW] to
    # newsletter.editors; it goes out at the slot unless `digest hold ISSUE`. 0: no review.
    review_hours: float = Field(0.0, ge=0, le=_HOURS_IN_A_YEAR)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            trigger = CronTrigger.from_crontab(v, timezone="UTC")
        except ValueError as exc:
            raise ValueError(
                f'invalid cron expression {v!r} ({exc}); expected five fields like "0 8 * * mon"'
            ) from None
        if not _fires_every_year(trigger):
            raise ValueError(
                f"cron expression {v!r} does not fire in every year (a date that does not exist, "
                'or a weekday and a date that rarely meet); expected a schedule like "0 8 * * mon"'
            )
        return v


def _fires_every_year(trigger: CronTrigger) -> bool:
    """Whether ``trigger`` fires within a year of every 1 January. The years 2001–2028 are a full
    cycle of the Gregorian calendar's leap years and weekdays, so they stand for every year."""
    for year in range(2001, 2029):
        start = datetime(year, 1, 1, tzinfo=timezone.utc)
        fire = trigger.get_next_fire_time(None, start)
        if fire is None or fire - start > timedelta(days=366):
            return False
    return True


class SubscriberSettings(ConfigSection):
    # A CSV of subscribers (columns email, name), re-imported on every run and send: new addresses are added, known ones keep their status (an unsubscribe is never undone).
    csv: ConfigPath | None = None


class StateSettings(ConfigSection):
    # Where digest keeps its state (articles, issues, deliveries): an SQLAlchemy URL; default: SQLite at var/digest.sqlite3 beside the config.
    url: str | None = None


class TemplateSettings(ConfigSection):
    # A folder of templates looked up before the default theme's; it must exist.
    path: ConfigPath | None = None

    @field_validator("path")
    @classmethod
    def _folder(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_dir():
            raise ValueError(f"template folder {str(v)!r} does not exist; create it or remove templates.path")
        return v


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
        return None if v is None else check_url(v, schemes=("https",))


class RenderSettings(ConfigSection):
    """Size guard: Gmail clips a message whose HTML passes about 102 KB."""

    # A build warns when the HTML passes this many bytes.
    warn_html_bytes: int = Field(90_000, ge=1000, le=10_000_000)
    # A build fails (or drops trailing articles) when the HTML passes this many bytes.
    max_html_bytes: int = Field(102_000, ge=1000, le=10_000_000)
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


class WebhookSettings(ConfigSection):
    """E-mail services' event webhooks on ``digest serve``. Each names the environment variable
    that holds its secret; a webhook whose secret is not set answers 403 to every request."""

    # The environment variable holding Mailgun's HTTP webhook signing key (/webhooks/mailgun).
    mailgun_signing_key_env: str | None = None
    # The environment variable holding SendGrid's Event Webhook verification key, base64 DER or PEM (/webhooks/sendgrid).
    sendgrid_public_key_env: str | None = None
    # The user name Postmark's webhook sends with basic authentication (/webhooks/postmark).
    postmark_username: str | None = None
    # The environment variable holding that basic-authentication password.
    postmark_password_env: str | None = None
    # Mailgun's signed timestamp may be this old at most (seconds); older requests are refused.
    max_age_seconds: int = Field(900, ge=60)
    # An address is taken off the list after this many issues in a row bounced softly.
    soft_bounce_limit: int = Field(3, ge=1)


class SignupSettings(ConfigSection):
    """Sign-up with double opt-in on ``digest serve`` (GET/POST /subscribe, /confirm)."""

    # Offer sign-up on digest serve; false answers 404 at /subscribe and /confirm.
    enabled: bool = True
    # Where the confirmation link points (default: the site's /confirm); digest serve answers there.
    confirm_url: str | None = None
    # How long the link in the confirmation e-mail works.
    confirm_hours: int = Field(48, ge=1)
    # Send a welcome e-mail once the address is confirmed.
    welcome: bool = False
    # Sign-up requests per hour from one client address, and confirmation e-mails per hour to one address.
    per_ip_per_hour: int = Field(20, ge=1, le=1_000_000)
    # Confirmation e-mails per hour to one address.
    per_address_per_hour: int = Field(3, ge=1, le=1000)

    @field_validator("confirm_url")
    @classmethod
    def _confirm_url(cls, v: str | None) -> str | None:
        if v is not None:
            check_url(v)
        return v
