"""One typed settings object, loaded once from TOML with environment overrides.

Every section is a frozen dataclass; :func:`load_settings` checks each key against the
dataclass fields, so a misspelt key or a wrong type is reported with its dotted name
(``[submission] max_recipients: expected an integer``) instead of being ignored.

Environment variables ``PHIGATE_<SECTION>__<KEY>`` override the file; their values are
parsed as TOML values when they parse (``20``, ``true``, ``["a", "b"]``) and taken as
plain strings otherwise, so ``PHIGATE_STORAGE__URL=postgresql+psycopg://…`` just works.
"""
from __future__ import annotations

from phigate.config.loading import (
    ENV_PREFIX,
    apply_env_overrides,
    load_settings,
    settings_from_mapping,
)
from phigate.config.sections import (
    AdminSettings,
    AuditSettings,
    DeliverySettings,
    DkimSettings,
    DomainPolicy,
    FeedbackSettings,
    HostPort,
    HttpSettings,
    LoggingSettings,
    PhiAction,
    PickupSettings,
    PolicySettings,
    RetentionSettings,
    ScannerSettings,
    ServerSettings,
    Settings,
    StorageSettings,
    SubmissionSettings,
    TlsLevelChoice,
)
from phigate.config.validation import validate

__all__ = [
    "ENV_PREFIX", "AdminSettings", "AuditSettings", "DeliverySettings", "DkimSettings",
    "DomainPolicy", "FeedbackSettings", "HostPort", "HttpSettings", "LoggingSettings",
    "PhiAction", "PickupSettings", "PolicySettings", "RetentionSettings", "ScannerSettings",
    "ServerSettings", "Settings", "StorageSettings", "SubmissionSettings", "TlsLevelChoice",
    "apply_env_overrides", "load_settings", "settings_from_mapping", "validate",
]
