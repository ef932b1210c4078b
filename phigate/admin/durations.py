"""Parsing the ``1h`` / ``30m`` / ``2d`` durations and ``--since`` moments the CLI takes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from phigate.errors import UserError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.lower())
    if match is None:
        raise UserError(f"not a duration: {text!r} (use e.g. 90s, 30m, 1h, 2d, 1w)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_since(text: str, now: datetime) -> datetime:
    """A duration back from ``now`` (``1h``) or an ISO 8601 moment (UTC when no zone)."""
    if _DURATION.match(text.lower()):
        return now - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"not a duration or ISO time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
