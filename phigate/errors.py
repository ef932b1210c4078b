"""Exceptions that carry a message fit to show a user, on one line."""


class PhigateError(Exception):
    """Base class: ``str(error)`` is a single line that never contains message content."""

    exit_status = 1


class UserError(PhigateError):
    """A command was used wrongly or its input was bad (exit status 1)."""


class ConfigError(PhigateError):
    """The configuration cannot be used: names the key or file at fault (exit status 2)."""

    exit_status = 2
