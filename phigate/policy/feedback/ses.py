"""Amazon SES notifications sent by mail (SNS e-mail subscriptions): bounce, complaint, delivery.

The body is the JSON notification Amazon documents (``notificationType`` ``Bounce`` with
``bounce.bouncedRecipients``, ``Complaint`` with ``complaint.complainedRecipients``,
``Delivery``), either bare or wrapped in an SNS envelope whose ``Message`` holds it as a
string. A delivery notification is not feedback: it is reported as kind ``other``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

_NOTIFICATION_TYPE = re.compile(r'"notificationType"\s*:\s*"(\w+)"')
_ENTRY = re.compile(r'\{[^{}]*"emailAddress"[^{}]*\}')
_EMAIL_ADDRESS = re.compile(r'"emailAddress"\s*:\s*"([^"\s]+@[^"\s]+)"')

_MAX_BODY = 256 * 1024
_MAX_RECIPIENTS = 100


@dataclass(frozen=True)
class SesRecipient:
    address: str
    status: str | None = None
    diagnostic: str | None = None
    temporary: bool = False


@dataclass(frozen=True)
class SesNotification:
    kind: str  # "bounce" | "complaint" | "other"
    recipients: list[SesRecipient] = field(default_factory=list)
    feedback_type: str | None = None


def ses_notification(message: Message) -> SesNotification | None:
    """The SES notification a message carries, or None."""
    if message.is_multipart() or message.get_content_maintype() != "text":
        return None
    payload = message.get_payload(decode=True)
    if not isinstance(payload, bytes) or b"notificationType" not in payload[:_MAX_BODY]:
        return None
    text = payload[:_MAX_BODY].decode("utf-8", "replace")
    data = _json_object(text)
    if isinstance(data, dict) and isinstance(data.get("Message"), str):
        data = _json_object(data["Message"])
    if not isinstance(data, dict):
        data = _salvaged(text)  # line-wrapped or cut by a mail system on the way
    if not isinstance(data, dict):
        return None
    kind = str(data.get("notificationType") or data.get("eventType") or "").lower()
    if kind == "bounce":
        return _bounce(data.get("bounce"))
    if kind == "complaint":
        return _complaint(data.get("complaint"))
    return SesNotification("other") if kind else None


def _json_object(text: str) -> Any:
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    return value


def _salvaged(text: str) -> dict[str, Any] | None:
    """What a broken notification still says: its type and the recipient addresses."""
    unwrapped = "".join(line.rstrip("\r") for line in text.splitlines()).replace('\\"', '"')
    kind = _NOTIFICATION_TYPE.search(unwrapped)
    if kind is None:
        return None
    entries = []
    for block in _ENTRY.findall(unwrapped):
        address = _EMAIL_ADDRESS.search(block)
        if address is None:
            continue
        entry = {"emailAddress": address.group(1)}
        for name in ("status", "diagnosticCode", "action"):
            value = re.search(rf'"{name}"\s*:\s*"([^"]*)"', block)
            if value is not None:
                entry[name] = value.group(1)
        entries.append(entry)
    key = {"bounce": "bouncedRecipients", "complaint": "complainedRecipients"}.get(
        kind.group(1).lower())
    data: dict[str, Any] = {"notificationType": kind.group(1)}
    if key is not None:
        data[kind.group(1).lower()] = {key: entries}
    return data


def _bounce(bounce: object) -> SesNotification:
    if not isinstance(bounce, dict):
        return SesNotification("other")
    temporary = str(bounce.get("bounceType", "")).lower() == "transient"
    found = []
    for entry in _entries(bounce.get("bouncedRecipients")):
        address = str(entry.get("emailAddress", "")).strip()
        if "@" not in address:
            continue
        status = entry.get("status")
        diagnostic = entry.get("diagnosticCode")
        found.append(SesRecipient(address, str(status) if status else None,
                                  str(diagnostic) if diagnostic else None, temporary))
    return SesNotification("bounce" if found else "other", found)


def _complaint(complaint: object) -> SesNotification:
    if not isinstance(complaint, dict):
        return SesNotification("other")
    addresses = [str(entry.get("emailAddress", "")).strip()
                 for entry in _entries(complaint.get("complainedRecipients"))]
    found = [SesRecipient(address) for address in addresses if "@" in address]
    feedback_type = str(complaint.get("complaintFeedbackType") or "abuse").lower()
    return SesNotification("complaint" if found else "other", found, feedback_type)


def _entries(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [entry for entry in value[:_MAX_RECIPIENTS] if isinstance(entry, dict)]
