"""TOML configuration → typed, validated settings.

Every problem is reported at once, each as ``FILE: key.path: what is wrong``. Unknown keys are
errors (they are usually typos). Relative paths resolve against the config file's folder.
Secrets are never stored in the file: the file names an environment variable that holds them.

:mod:`~digest.config.sections` and :mod:`~digest.config.delivery` hold the sections' models,
:mod:`~digest.config.settings` the whole and the loading; everything public is importable from here.
"""

from digest.config.delivery import (
    DELIVERY_BACKENDS,
    APISettings,
    DeliverySettings,
    DKIMSettings,
    MailgunSettings,
    OutboxSettings,
    PaceSettings,
    PostmarkSettings,
    RetrySettings,
    SecretFromEnv,
    SendGridSettings,
    SMTPSettings,
)
from digest.config.sections import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    SOURCE_KINDS,
    FetchSettings,
    LinkSettings,
    NewsletterSettings,
    RenderSettings,
    ScheduleSettings,
    SecuritySettings,
    SelectionSettings,
    SourceSettings,
    StateSettings,
    SubscriberSettings,
    TeaserSettings,
    TemplateSettings,
)
from digest.config.settings import Settings, config_path_from, load_config, settings_from_dict

__all__ = [
    "DELIVERY_BACKENDS",
    "SOURCE_KINDS",
    "SecretFromEnv",
    "APISettings",
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "DKIMSettings",
    "DeliverySettings",
    "FetchSettings",
    "LinkSettings",
    "MailgunSettings",
    "NewsletterSettings",
    "OutboxSettings",
    "PaceSettings",
    "PostmarkSettings",
    "RenderSettings",
    "RetrySettings",
    "SMTPSettings",
    "ScheduleSettings",
    "SecuritySettings",
    "SelectionSettings",
    "SendGridSettings",
    "Settings",
    "SourceSettings",
    "StateSettings",
    "SubscriberSettings",
    "TeaserSettings",
    "TemplateSettings",
    "config_path_from",
    "load_config",
    "settings_from_dict",
]
