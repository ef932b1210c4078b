"""The key that ties a returned message to the one we queued: a hash of its Message-ID."""

from __future__ import annotations

import hashlib
import re

_MESSAGE_ID_FIELD = re.compile(rb"^message-id:[ \t]*((?:.*)(?:\r?\n[ \t].*)*)",
                               re.IGNORECASE | re.MULTILINE)
_ID = re.compile(rb"<[^<>\s]{1,250}>")
_MAX_HEADER = 256 * 1024


def header_block(body: bytes) -> bytes:
    end = body.find(b"\r\n\r\n", 0, _MAX_HEADER)
    if end < 0:
        end = body.find(b"\n\n", 0, _MAX_HEADER)
    return body[: end if end >= 0 else _MAX_HEADER]


def message_id_key(message_id: str) -> str:
    """SHA-256 of a ``<...>`` Message-ID, lowercased."""
    return hashlib.sha256(message_id.strip().lower().encode("utf-8", "replace")).hexdigest()


def header_id(body: bytes) -> str | None:
    """:func:`message_id_key` of the message's Message-ID header, or None."""
    field = _MESSAGE_ID_FIELD.search(header_block(body))
    if field is None:
        return None
    found = _ID.search(field.group(1))
    return message_id_key(found.group(0).decode("utf-8", "replace")) if found else None
