"""The ``[delivery]`` section: the backend, its connection or service, DKIM, pace and retries.
Secrets are never read from the file (see :mod:`digest.config.settings`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from digest.config.sections import ConfigPath, ConfigSection, check_url, one_of

#: The ``[delivery] backend`` values. digest.delivery.registry maps each to its backend class
#: (the config sits below the backends and does not import them; a test keeps the two equal).
DELIVERY_BACKENDS = ("outbox", "smtp", "sendgrid", "mailgun", "postmark", "console")


@dataclass(frozen=True)
class SecretFromEnv:
    """A backend's secret, which the config file never holds: its ``[delivery.<name>]`` table
    names an environment variable (``env_key``) and loading the config puts that variable's value
    into the setting ``into``. ``file_keys``: keys that would put the secret in the file (refused);
    ``what``: the secret in an error message (``{backend}`` is the backend's name)."""

    env_key: str
    into: str
    what: str
    file_keys: tuple[str, ...]
    ascii_only: bool = False  # the protocol cannot carry other characters (SMTP AUTH through smtplib)


class SMTPSettings(ConfigSection):
    secret: ClassVar[SecretFromEnv] = SecretFromEnv(
        env_key="password_env",
        into="password",
        what="the SMTP password",
        file_keys=("password",),
        ascii_only=True,
    )

    # The SMTP relay's host name.
    host: str = "localhost"
    # Its port: 587 (starttls), 465 (tls) or 25.
    port: int = Field(587, ge=1, le=65535)
    # "starttls", "tls" (implicit TLS) or "none" (only for a relay on localhost).
    security: Literal["none", "starttls", "tls"] = "starttls"
    # The login name, if the relay wants one (the password comes from password_env).
    username: str | None = None
    # The environment variable holding the SMTP password.
    password_env: str | None = None
    # Seconds to wait for the relay.
    timeout: float = Field(30.0, gt=0, le=3600)
    # Parallel connections, each reused for many messages (delivery.pace caps messages each).
    connections: int = Field(2, ge=1, le=64)
    # A CA bundle for a relay with a private certificate; certificates are always checked.
    ca_file: ConfigPath | None = None
    # A Return-Path per recipient (VERP: sender+ana=example.org@domain), so the bounce mailbox
    # knows whom each bounce is about; the relay must deliver sender+anything to the sender's box.
    verp: bool = False
    # Filled from the environment variable named by password_env; never read from the file.
    password: SecretStr | None = Field(None, exclude=True, repr=False)


class DKIMSettings(ConfigSection):
    """DKIM signing of messages sent by digest itself over SMTP (an ESP signs its own)."""

    # The DKIM selector (s=): the DNS record is <selector>._domainkey.<domain>.
    selector: str
    # The signing domain (d=); the sender's domain when not given, which keeps DMARC aligned.
    domain: str | None = None
    # A PEM file with the RSA private key (or key_env).
    key_path: ConfigPath | None = None
    # An environment variable holding the PEM private key (or key_path).
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


class OutboxSettings(ConfigSection):
    # The folder the outbox backend writes one .eml per recipient into (a folder per issue).
    path: ConfigPath = Path("outbox")


class PaceSettings(ConfigSection):
    # 0 = as fast as the backend goes; a provider's 421 or 429 slows the pace down either way.
    messages_per_second: float = Field(0.0, ge=0, le=100_000)
    # SMTP: a connection is closed and opened again after this many messages.
    messages_per_connection: int = Field(100, ge=1, le=1_000_000)


class RetrySettings(ConfigSection):
    # Transient failures (SMTP 4xx, dropped connections, HTTP 429/5xx) are retried with
    # exponential backoff and jitter, honouring Retry-After, up to max_attempts in all.
    max_attempts: int = Field(5, ge=1, le=100)
    # Seconds before the first retry, doubled each time.
    base_delay: float = Field(5.0, gt=0, le=86400)
    # The longest wait between two attempts, in seconds.
    max_delay: float = Field(600.0, gt=0, le=86400)


class APISettings(ConfigSection):
    secret: ClassVar[SecretFromEnv] = SecretFromEnv(
        env_key="api_key_env", into="api_key", what="the {backend} API key", file_keys=("api_key", "token", "password")
    )

    # The service's API address.
    base_url: str
    # Seconds to wait for the service.
    timeout: float = Field(30.0, gt=0, le=3600)
    # Filled from the environment variable named by api_key_env; never read from the file.
    api_key: SecretStr | None = Field(None, exclude=True, repr=False)

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        return check_url(v).rstrip("/")


class SendGridSettings(APISettings):
    base_url: str = "https://api.sendgrid.com"
    # The environment variable holding the API key.
    api_key_env: str = "SENDGRID_API_KEY"


class MailgunSettings(APISettings):
    base_url: str = "https://api.mailgun.net"  # EU region: https://api.eu.mailgun.net
    # The environment variable holding the API key.
    api_key_env: str = "MAILGUN_API_KEY"
    # The sending domain set up at Mailgun ("mg.example.org"); required with the mailgun backend.
    domain: str | None = None


class PostmarkSettings(APISettings):
    # The service's API address.
    base_url: str = "https://api.postmarkapp.com"
    # The environment variable holding the server token.
    api_key_env: str = "POSTMARK_SERVER_TOKEN"
    # The Postmark message stream (a broadcast stream for newsletters).
    message_stream: str = "broadcast"


class DeliverySettings(ConfigSection):
    # "outbox", "smtp", "sendgrid", "mailgun", "postmark" or "console" (DELIVERY_BACKENDS).
    backend: str = "outbox"
    smtp: SMTPSettings = SMTPSettings()
    outbox: OutboxSettings = OutboxSettings()
    dkim: DKIMSettings | None = None
    sendgrid: SendGridSettings = SendGridSettings()
    mailgun: MailgunSettings = MailgunSettings()
    postmark: PostmarkSettings = PostmarkSettings()
    pace: PaceSettings = PaceSettings()
    retry: RetrySettings = RetrySettings()
    # Messages claimed together (one transaction); over SMTP each is still recorded as answered,
    # so a crash repeats at most one per connection, through a service one request's batch (see
    # digest.delivery.ledger). Default: the backend's own (SMTP 500, APIs their limit).
    batch_size: int | None = Field(None, ge=1, le=1000)
    # How long a claimed batch stays reserved for its sender before another may take it over.
    lease_seconds: float = Field(600.0, gt=0, le=86400)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        return one_of(v, DELIVERY_BACKENDS)

    @model_validator(mode="after")
    def _mailgun_domain(self) -> DeliverySettings:
        if self.backend == "mailgun" and not self.mailgun.domain:
            raise ValueError('the mailgun backend needs delivery.mailgun.domain, e.g. domain = "mg.example.org"')
        return self
