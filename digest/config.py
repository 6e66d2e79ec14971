"""TOML configuration → typed, validated settings.

Every problem is reported at once, each as ``FILE: key.path: what is wrong``. Unknown keys are
errors (they are usually typos). Relative paths resolve against the config file's folder.
Secrets are never stored in the file: the file names an environment variable that holds them.
"""

from __future__ import annotations

import os
import re
import tomllib
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from digest.errors import ConfigError

DEFAULT_CONFIG = Path("config/digest.toml")
CONFIG_ENV = "DIGEST_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_address(value: str, *, display_name: bool) -> str:
    name, addr = parseaddr(value)
    if "@" not in addr or addr.startswith("@") or addr.endswith("@") or " " in addr:
        form = '"Name <address@example.org>"' if display_name else '"address@example.org"'
        raise ValueError(f"expected an e-mail address like {form}, got {value!r}")
    return value


class NewsletterSettings(_Section):
    title: str
    sender: str
    reply_to: str | None = None
    site_url: str
    timezone: str = "UTC"
    postal_address: str
    language: str = "en"
    description: str | None = None
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    archive_url: str | None = None
    # The header shows this image (hosted: e-mail cannot carry it) instead of the title text.
    logo_url: str | None = None
    logo_alt: str | None = None
    logo_width: int = Field(180, ge=16, le=552)
    # An editor's note above the articles: inline text, or a file read when the issue is built
    # (blank lines separate paragraphs).
    editor_note: str | None = None
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

    @property
    def archive_base(self) -> str:
        return self.archive_url or f"{self.site_url}/archive"


class SourceSettings(_Section):
    name: str
    kind: Literal["feed", "page", "folder"]
    url: str | None = None
    path: Path | None = None
    # A feed whose items carry only a stub: fetch each new item's page and extract the article.
    fetch_full: bool = False
    # For a site that refuses the default User-Agent ([fetch] user_agent applies otherwise).
    user_agent: str | None = None

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


class FetchSettings(_Section):
    """How sources are fetched over HTTP (see digest.sources.http)."""

    # Default: "digest/<version> (newsletter digest generator; +<newsletter.site_url>)".
    user_agent: str | None = None
    timeout: float = Field(30.0, gt=0)
    max_response_mb: float = Field(10.0, gt=0)
    host_delay: float = Field(1.0, ge=0)
    workers: int = Field(8, ge=1, le=64)
    retries: int = Field(3, ge=0, le=10)
    max_retry_after: float = Field(300.0, ge=0)


class SelectionSettings(_Section):
    window_days: int = Field(7, ge=1)
    max_articles: int = Field(10, ge=1)
    min_articles: int = Field(1, ge=0)


class TeaserSettings(_Section):
    max_chars: int = Field(220, ge=40)


class ScheduleSettings(_Section):
    cron: str = "0 8 * * mon"
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


class SMTPSettings(_Section):
    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    timeout: float = Field(30.0, gt=0)
    # Parallel connections, each reused for many messages (delivery.pace caps messages each).
    connections: int = Field(2, ge=1, le=64)
    # A CA bundle for a relay with a private certificate; certificates are always checked.
    ca_file: Path | None = None
    # Filled from the environment variable named by password_env; never read from the file.
    password: SecretStr | None = Field(None, exclude=True, repr=False)


class DKIMSettings(_Section):
    """DKIM signing of messages sent by digest itself over SMTP (an ESP signs its own)."""

    selector: str
    # The signing domain (d=); the sender's domain when not given, which keeps DMARC aligned.
    domain: str | None = None
    key_path: Path | None = None
    key_env: str | None = None
    # Filled from key_path or the environment variable named by key_env; never from the file.
    private_key: SecretStr | None = Field(None, exclude=True, repr=False)

    @field_validator("selector", "domain")
    @classmethod
    def _dns_label(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", v):
            raise ValueError(f'expected a DNS name such as "mail2025" or "example.org", got {v!r}')
        return v

    @model_validator(mode="after")
    def _one_key(self) -> DKIMSettings:
        if (self.key_path is None) == (self.key_env is None):
            raise ValueError(
                "give exactly one of key_path (a PEM file) or key_env (an environment variable holding the PEM key)"
            )
        return self


class OutboxSettings(_Section):
    path: Path = Path("outbox")


class PaceSettings(_Section):
    # 0 = as fast as the backend goes; a provider's 421 or 429 slows the pace down either way.
    messages_per_second: float = Field(0.0, ge=0)
    # SMTP: a connection is closed and opened again after this many messages.
    messages_per_connection: int = Field(100, ge=1)


class RetrySettings(_Section):
    # Transient failures (SMTP 4xx, dropped connections, HTTP 429/5xx) are retried with
    # exponential backoff and jitter, honouring Retry-After, up to max_attempts in all.
    max_attempts: int = Field(5, ge=1)
    base_delay: float = Field(5.0, gt=0)
    max_delay: float = Field(600.0, gt=0)


class APISettings(_Section):
    base_url: str
    timeout: float = Field(30.0, gt=0)
    # Filled from the environment variable named by api_key_env; never read from the file.
    api_key: SecretStr | None = Field(None, exclude=True, repr=False)

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        if not v.startswith(("https://", "http://")):
            raise ValueError(f"expected an http(s) URL, got {v!r}")
        return v.rstrip("/")


class SendGridSettings(APISettings):
    base_url: str = "https://api.sendgrid.com"
    api_key_env: str = "SENDGRID_API_KEY"


class MailgunSettings(APISettings):
    base_url: str = "https://api.mailgun.net"  # EU region: https://api.eu.mailgun.net
    api_key_env: str = "MAILGUN_API_KEY"
    domain: str | None = None


class PostmarkSettings(APISettings):
    base_url: str = "https://api.postmarkapp.com"
    api_key_env: str = "POSTMARK_SERVER_TOKEN"
    message_stream: str = "broadcast"


API_BACKENDS = ("sendgrid", "mailgun", "postmark")


class DeliverySettings(_Section):
    backend: Literal["outbox", "smtp", "sendgrid", "mailgun", "postmark", "console"] = "outbox"
    smtp: SMTPSettings = SMTPSettings()
    outbox: OutboxSettings = OutboxSettings()
    dkim: DKIMSettings | None = None
    sendgrid: SendGridSettings = SendGridSettings()
    mailgun: MailgunSettings = MailgunSettings()
    postmark: PostmarkSettings = PostmarkSettings()
    pace: PaceSettings = PaceSettings()
    retry: RetrySettings = RetrySettings()
    # Messages claimed and recorded together; a crash can repeat at most one batch per sender
    # (see digest.delivery.ledger). Default: the backend's own (SMTP 100, APIs their limit).
    batch_size: int | None = Field(None, ge=1, le=1000)
    # How long a claimed batch stays reserved for its sender before another may take it over.
    lease_seconds: float = Field(600.0, gt=0)

    @model_validator(mode="after")
    def _mailgun_domain(self) -> DeliverySettings:
        if self.backend == "mailgun" and not self.mailgun.domain:
            raise ValueError('the mailgun backend needs delivery.mailgun.domain, e.g. domain = "mg.example.org"')
        return self


class SubscriberSettings(_Section):
    csv: Path | None = None


class StateSettings(_Section):
    url: str | None = None


class TemplateSettings(_Section):
    path: Path | None = None


class LinkSettings(_Section):
    """Campaign tags on article links, and the opt-in open-tracking pixel."""

    utm: bool = False
    utm_source: str = "newsletter"
    utm_medium: str = "email"
    # {issue} is the issue key, {position} the article's place in the issue (1, 2, ...).
    utm_campaign: str = "{issue}"
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


class RenderSettings(_Section):
    """Size guard: Gmail clips a message whose HTML passes about 102 KB."""

    warn_html_bytes: int = Field(90_000, ge=1000)
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


class SecuritySettings(_Section):
    secret_env: str = "DIGEST_SECRET"


class Settings(_Section):
    newsletter: NewsletterSettings
    sources: list[SourceSettings] = []
    fetch: FetchSettings = FetchSettings()
    selection: SelectionSettings = SelectionSettings()
    teaser: TeaserSettings = TeaserSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    delivery: DeliverySettings = DeliverySettings()
    subscribers: SubscriberSettings = SubscriberSettings()
    state: StateSettings = StateSettings()
    templates: TemplateSettings = TemplateSettings()
    security: SecuritySettings = SecuritySettings()
    links: LinkSettings = LinkSettings()
    render: RenderSettings = RenderSettings()
    # Where the settings came from; relative paths above are already resolved against its folder.
    config_path: Path = Field(Path("."), exclude=True)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, v: list[SourceSettings]) -> list[SourceSettings]:
        seen: set[str] = set()
        for s in v:
            if s.name in seen:
                raise ValueError(f"source name {s.name!r} is used twice; names must be unique")
            seen.add(s.name)
        return v

    @model_validator(mode="after")
    def _review_needs_editors(self) -> Settings:
        if self.schedule.review_hours and not self.newsletter.editors:
            raise ValueError(
                "schedule.review_hours is set but newsletter.editors is empty; "
                'list the addresses that get the [PREVIEW], e.g. editors = ["editor@example.org"]'
            )
        return self

    @property
    def state_url(self) -> str:
        return self.state.url or f"sqlite:///{self.config_path.parent / 'var' / 'digest.sqlite3'}"


# --- loading -------------------------------------------------------------------------------------

_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "bool": "true or false",
    "list": "a list",
    "dict": "a table",
    "model": "a table",
    "path": "a path string",
}


def _describe(err: dict[str, Any]) -> str:
    kind: str = err["type"]
    value = err.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key (check the spelling)"
    if kind == "literal_error":
        return f"expected {err['ctx']['expected']}, got {value!r}"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    for prefix, words in _TYPE_WORDS.items():
        if kind.startswith(prefix + "_"):
            return f"expected {words}, got {_show(value)}"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        return f"{err['msg'].lower()}, got {_show(value)}"
    return f"{err['msg']}, got {_show(value)}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make relative paths absolute against the config file's folder, before validation."""

    def fix(table: Any, key: str) -> None:
        if isinstance(table, dict) and isinstance(table.get(key), str):
            p = Path(table[key]).expanduser()
            table[key] = str(p if p.is_absolute() else (base / p).resolve())

    for src in data.get("sources", []) if isinstance(data.get("sources"), list) else []:
        fix(src, "path")
    delivery = data.get("delivery")
    if isinstance(delivery, dict):
        fix(delivery.get("outbox"), "path")
        fix(delivery.get("smtp"), "ca_file")
        dkim = delivery.get("dkim")
        fix(dkim, "key_path")
    fix(data.get("subscribers"), "csv")
    fix(data.get("templates"), "path")
    fix(data.get("newsletter"), "editor_note_file")


def _read_secrets(data: dict[str, Any], problems: list[str]) -> None:
    delivery = data.get("delivery") if isinstance(data.get("delivery"), dict) else {}
    smtp = delivery.get("smtp") if isinstance(delivery.get("smtp"), dict) else None
    if smtp is None or delivery.get("backend", "outbox") != "smtp":
        return
    if "password" in smtp:
        problems.append(
            "delivery.smtp.password: secrets do not belong in the config file; "
            'name an environment variable instead, e.g. password_env = "DIGEST_SMTP_PASSWORD"'
        )
        smtp.pop("password")
    _secret_from_env(
        smtp, smtp.get("password_env"), "password", "delivery.smtp.password_env", "the SMTP password", problems
    )


def _secret_from_env(table: dict[str, Any], var: Any, into: str, key_path: str, what: str, problems: list[str]) -> None:
    """Put the value of environment variable ``var`` into ``table[into]``, or report it missing."""
    if not isinstance(var, str):
        return
    secret = os.environ.get(var)
    if not secret:
        problems.append(f"{key_path}: environment variable {var} is not set; export {var} with {what} before running")
    else:
        table[into] = secret


def _read_api_keys(data: dict[str, Any], problems: list[str]) -> None:
    """The selected e-mail service's API key, from the environment variable the config names."""
    delivery = data.get("delivery") if isinstance(data.get("delivery"), dict) else {}
    backend = delivery.get("backend")
    if backend not in API_BACKENDS:
        return
    table = delivery.get(backend)
    if table is None:
        table = delivery[backend] = {}
    if not isinstance(table, dict):
        return
    for key in ("api_key", "token", "password"):
        if key in table:
            problems.append(
                f"delivery.{backend}.{key}: secrets do not belong in the config file; "
                f'name an environment variable instead with api_key_env = "..."'
            )
            table.pop(key)
    default = (
        {"sendgrid": SendGridSettings, "mailgun": MailgunSettings, "postmark": PostmarkSettings}[backend]
        .model_fields["api_key_env"]
        .default
    )
    var = table.get("api_key_env", default)
    _secret_from_env(table, var, "api_key", f"delivery.{backend}.api_key_env", f"the {backend} API key", problems)


def _read_dkim_key(data: dict[str, Any], problems: list[str]) -> None:
    """Load the DKIM private key for SMTP sends from its file or environment variable."""
    delivery = data.get("delivery") if isinstance(data.get("delivery"), dict) else {}
    dkim = delivery.get("dkim") if isinstance(delivery.get("dkim"), dict) else None
    if dkim is None or delivery.get("backend", "outbox") != "smtp":
        return
    if "private_key" in dkim:
        problems.append(
            "delivery.dkim.private_key: secrets do not belong in the config file; "
            'give key_path = "dkim.pem" or key_env = "DIGEST_DKIM_KEY" instead'
        )
        dkim.pop("private_key")
    pem: str | None = None
    if isinstance(dkim.get("key_env"), str):
        var = dkim["key_env"]
        pem = os.environ.get(var) or None
        if pem is None:
            problems.append(
                f"delivery.dkim.key_env: environment variable {var} is not set; export it with the PEM private key"
            )
    elif isinstance(dkim.get("key_path"), str):
        try:
            pem = Path(dkim["key_path"]).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not a PEM text file"
            problems.append(f"delivery.dkim.key_path: cannot read {dkim['key_path']}: {reason}")
    if pem is None:
        return
    # An environment variable often carries the PEM's line breaks as literal "\n".
    pem = pem.replace("\\n", "\n").replace("\r\n", "\n").strip() + "\n"
    from dkim.crypto import UnparsableKeyError, parse_pem_private_key

    try:
        parse_pem_private_key(pem.encode("ascii", "replace"))
    except UnparsableKeyError:
        where = "key_env" if dkim.get("key_env") else "key_path"
        problems.append(f"delivery.dkim.{where}: not a PEM RSA private key (make one with `openssl genrsa 2048`)")
        return
    dkim["private_key"] = pem


def config_path_from(option: str | os.PathLike[str] | None) -> Path:
    """The config file to use: the --config option, else $DIGEST_CONFIG, else config/digest.toml."""
    if option:
        return Path(option)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG


def load_config(path: str | os.PathLike[str]) -> Settings:
    """Read and validate a config file. Raises :class:`ConfigError` listing every problem."""
    p = Path(path)
    where = str(p)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where}: config file not found; pass --config FILE or set {CONFIG_ENV}") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text; save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    return settings_from_dict(data, p)


def settings_from_dict(data: dict[str, Any], path: Path) -> Settings:
    where = str(path)
    base = path.resolve().parent
    _resolve_paths(data, base)
    problems: list[str] = []
    _read_secrets(data, problems)
    _read_dkim_key(data, problems)
    _read_api_keys(data, problems)
    data["config_path"] = str(path.resolve())
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(f"{_key_path(e['loc'])}: {_describe(e)}" for e in exc.errors())  # type: ignore[arg-type]
        settings = None
    if problems:
        raise ConfigError([f"{where}: {p}" for p in problems])
    assert settings is not None
    return settings
