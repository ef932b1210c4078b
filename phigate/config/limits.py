"""Numeric limits that must be above zero, and those where zero means "no limit".

The loader refuses negative integers; zero is a valid integer but, for most limits, a
meaningless setting: ``max_message_size = 0`` used to mean "unlimited" (any size reached
the scanner), ``[delivery] workers = 0`` quietly ran one worker, a zero lease or timeout
makes every claim or connection fail at once. Those keys are refused here with one line
naming the key. The few keys where zero is a documented choice ("no cap", "never", "one
per core") are listed apart: :func:`unlimited_warnings` says so in a line each, so an
operator who set them by accident is told at start.
"""

from __future__ import annotations

from phigate.config.sections import Settings
from phigate.errors import ConfigError

#: (section, key) that must be > 0: zero or below would mean unlimited, nothing, or never.
POSITIVE: tuple[tuple[str, str], ...] = (
    ("submission", "max_message_size"),
    ("submission", "max_recipients"),
    ("submission", "max_commands"),
    ("submission", "max_sessions_per_ip"),
    ("submission", "auth_max_failures"),
    ("submission", "auth_lockout_seconds"),
    ("submission", "timeout_seconds"),
    ("http", "header_timeout_seconds"),
    ("http", "body_timeout_seconds"),
    ("feedback", "max_message_size"),
    ("feedback", "max_recipients"),
    ("feedback", "max_sessions_per_ip"),
    ("feedback", "soft_bounce_limit"),
    ("feedback", "soft_bounce_window_days"),
    ("delivery", "max_lifetime_seconds"),
    ("delivery", "workers"),
    ("delivery", "max_connections_per_domain"),
    ("delivery", "rate_per_minute_per_domain"),
    ("delivery", "max_connections"),
    ("delivery", "lease_seconds"),
    ("delivery", "connect_timeout_seconds"),
    ("delivery", "command_timeout_seconds"),
    ("delivery", "mx_port"),
    ("delivery", "retry_base_seconds"),
    ("delivery", "retry_max_seconds"),
    ("delivery", "claim_batch_size"),
    ("delivery", "poll_interval_seconds"),
    ("delivery", "shutdown_timeout_seconds"),
    ("delivery", "prepare_timeout_seconds"),
    ("scanner", "timeout_seconds"),
    ("scanner", "max_text_bytes"),
    ("scanner", "ner_max_chars"),
)

#: (section, key, what zero means) where zero is a documented choice that lifts a limit.
ZERO_MEANS_UNLIMITED: tuple[tuple[str, str, str], ...] = (
    ("submission", "max_sessions", "no cap on concurrent sessions"),
    ("feedback", "max_sessions", "no cap on concurrent sessions"),
)


#: The most nice levels a process can go down (from 0 to 19, the lowest priority).
MAX_NICE_INCREMENT = 19


def check_limits(settings: Settings) -> None:
    """Refuse the first limit of :data:`POSITIVE` that is not above zero."""
    for section, key in POSITIVE:
        value = getattr(getattr(settings, section), key)
        if not value > 0:
            raise ConfigError(f"[{section}] {key}: must be greater than 0 (got {value})")
    delivery = settings.delivery
    if delivery.retry_max_seconds < delivery.retry_base_seconds:
        raise ConfigError("[delivery] retry_max_seconds: must be at least retry_base_seconds")
    if not 0 <= delivery.process_nice <= MAX_NICE_INCREMENT:
        raise ConfigError(f"[delivery] process_nice: must be 0 to {MAX_NICE_INCREMENT} "
                          f"(got {delivery.process_nice})")


def unlimited_warnings(settings: Settings) -> list[str]:
    """One line per key of :data:`ZERO_MEANS_UNLIMITED` that is set to zero."""
    return [f"[{section}] {key} = 0: {meaning}"
            for section, key, meaning in ZERO_MEANS_UNLIMITED
            if getattr(getattr(settings, section), key) == 0]
