"""One event per line on stdout (journald picks it up), as logfmt or JSON.

Call sites pass structured fields, never free text built from message data:
``log_event(log, "accepted", id=message_id, ip=ip, user=user, rcpts=3)``. Fields are
message ids, client IPs, account names, verdicts, categories and counts; never addresses of
patients, subjects, bodies or finding text.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

FIELDS_ATTR = "phigate_fields"
#: A logfmt value with any of these is written quoted (one regex search, not a scan per
#: character: every field of every line goes through it).
_NEEDS_QUOTES = re.compile(r'[ "=\\\n\r\t]')


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO,
              **fields: Any) -> None:
    logger.log(level, event, extra={FIELDS_ATTR: fields})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = getattr(record, FIELDS_ATTR, {})
    return fields


def _payload(record: logging.LogRecord, static: dict[str, str]) -> dict[str, Any]:
    payload = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        **static,
        "event": record.getMessage(),
        **_fields(record),
    }
    if record.exc_info and record.exc_info[0] is not None:
        # The exception type only: exception messages can quote data.
        payload["exc"] = record.exc_info[0].__name__
    return payload


class _Formatter(logging.Formatter):
    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        #: ``proc=delivery`` on every line of serve's delivery child (same journal).
        self._static = {"proc": process} if process else {}


class LogfmtFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}"
                        for key, value in _payload(record, self._static).items())


class JsonFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_payload(record, self._static), default=str)


def _logfmt_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, list | tuple | set):
        value = ",".join(str(v) for v in value)
    text = str(value)
    if text and _NEEDS_QUOTES.search(text) is None:
        return text
    return json.dumps(text)  # a quoted string with \" \\ \n escapes, as logfmt readers expect


def configure_logging(level: str = "info", fmt: str = "logfmt", *,
                      process: str | None = None) -> None:
    """Log to stdout; ``process`` names a child process of ``serve`` on every line."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(process) if fmt == "json" else LogfmtFormatter(process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic narrates every schema check at info level; only its warnings matter here.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
