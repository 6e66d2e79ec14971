"""The whole configuration, and how a TOML file becomes one.

Every problem is reported at once, each as ``FILE: key.path: what is wrong``. Unknown keys are
errors (they are usually typos). Relative paths resolve against the config file's folder.
Secrets are never stored in the file: the file names an environment variable that holds them.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from digest import redact
from digest.config.delivery import (
    DELIVERY_BACKENDS,
    DeliverySettings,
    SecretFromEnv,
)
from digest.config.sections import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    ConfigSection,
    FetchSettings,
    LinkSettings,
    NewsletterSettings,
    RenderSettings,
    ScheduleSettings,
    SecuritySettings,
    SelectionSettings,
    SignupSettings,
    SourceSettings,
    StateSettings,
    SubscriberSettings,
    TeaserSettings,
    TemplateSettings,
    WebhookSettings,
)
from digest.errors import ConfigError


class Settings(ConfigSection):
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
    webhooks: WebhookSettings = WebhookSettings()
    signup: SignupSettings = SignupSettings()
    # Where the settings came from; relative paths above are already resolved against its folder.
    config_path: Path = Field(Path("."), exclude=True, strict=False)

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
    if kind == "finite_number":
        return f"expected a finite number, got {_show(value)}"
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
            try:
                p = Path(table[key]).expanduser()
                table[key] = str(p if p.is_absolute() else (base / p).resolve())
            except (ValueError, OSError, RuntimeError):
                pass  # a NUL character, a symlink loop: left as written, for validation to report

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


def _read_backend_secret(data: dict[str, Any], problems: list[str]) -> None:
    """The selected backend's secret (the ``secret`` its settings class declares), from the
    environment variable its table names, or else the one its settings name by default."""
    delivery: dict[str, Any] = data["delivery"] if isinstance(data.get("delivery"), dict) else {}
    name = delivery.get("backend", DeliverySettings.model_fields["backend"].default)
    if not isinstance(name, str) or name not in DELIVERY_BACKENDS or name not in DeliverySettings.model_fields:
        return  # an unknown name is reported by validation; console has no table and no secret
    section_defaults = DeliverySettings.model_fields[name].default
    secret: SecretFromEnv | None = getattr(section_defaults, "secret", None)
    if secret is None:
        return
    table = delivery.setdefault(name, {})
    if not isinstance(table, dict):
        return
    default_var = getattr(section_defaults, secret.env_key)
    for key in secret.file_keys:
        if key in table:
            problems.append(
                f"delivery.{name}.{key}: secrets do not belong in the config file; name an environment variable "
                f'instead, e.g. {secret.env_key} = "{default_var or f"DIGEST_{name}_{secret.into}".upper()}"'
            )
            table.pop(key)
    var = table.get(secret.env_key, default_var)
    key_path = f"delivery.{name}.{secret.env_key}"
    _secret_from_env(table, var, secret.into, key_path, secret.what.format(backend=name), problems)
    value = table.get(secret.into)
    if secret.ascii_only and isinstance(value, str) and not value.isascii():
        problems.append(
            f"{key_path}: environment variable {var} holds characters outside ASCII, which SMTP AUTH "
            "cannot send; use an ASCII password (the value is not shown)"
        )
        table.pop(secret.into)


def _secret_from_env(table: dict[str, Any], var: Any, into: str, key_path: str, what: str, problems: list[str]) -> None:
    """Put the value of environment variable ``var`` into ``table[into]``, or report it missing."""
    if not isinstance(var, str):
        return
    secret = checked_secret(var, key_path, what, problems)
    if secret is not None:
        table[into] = secret


def checked_secret(var: str, key_path: str, what: str, problems: list[str], *, multiline: bool = False) -> str | None:
    """The value of environment variable ``var`` with surrounding white space stripped (a
    mounted secret often ends in a newline), registered with :mod:`digest.redact` so it is
    never printed; None, with a problem line naming the variable (never the value), when it is
    unset, empty or holds a control character."""
    raw = os.environ.get(var)
    redact.register(raw)
    secret = (raw or "").strip()
    if not secret:
        problems.append(f"{key_path}: environment variable {var} is not set; export {var} with {what} before running")
        return None
    allowed = "\n\t" if multiline else ""
    if any((ord(ch) < 32 and ch not in allowed) or ord(ch) == 127 for ch in secret):
        problems.append(
            f"{key_path}: environment variable {var} holds a control character (a line break or similar) inside "
            f"{what}; set it to the value alone (the value is not shown)"
        )
        return None
    return secret


def _read_dkim_key(data: dict[str, Any], problems: list[str]) -> None:
    """Load the DKIM private key for SMTP sends from its file or environment variable."""
    delivery: dict[str, Any] = data["delivery"] if isinstance(data.get("delivery"), dict) else {}
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
        redact.register(pem)
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
    # dkimpy lets a bad base64 body or a short ASN.1 structure through as its own exceptions.
    except (UnparsableKeyError, ValueError, IndexError, TypeError):
        where = "key_env" if dkim.get("key_env") else "key_path"
        problems.append(f"delivery.dkim.{where}: not a PEM RSA private key (make one with `openssl genrsa 2048`)")
        return
    redact.register(pem)
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


def _duplicate_source_names(data: dict[str, Any], problems: list[str]) -> None:
    """Checked on the raw tables, so a repeated name is reported beside every other problem
    (a model validator on the list runs only once each source is valid)."""
    sources = data.get("sources")
    first: dict[str, int] = {}
    for i, src in enumerate(sources if isinstance(sources, list) else []):
        name = src.get("name") if isinstance(src, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(
                f"sources[{i}].name: source name {name!r} is already used by sources[{first[name]}]; "
                "names must be unique"
            )
        else:
            first[name] = i


def settings_from_dict(data: dict[str, Any], path: Path) -> Settings:
    """Validate a parsed config (``path`` names it in messages and anchors relative paths).
    Raises :class:`ConfigError` listing every problem."""
    where = str(path)
    base = path.resolve().parent
    _resolve_paths(data, base)
    problems: list[str] = []
    _duplicate_source_names(data, problems)
    _read_backend_secret(data, problems)
    _read_dkim_key(data, problems)
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
