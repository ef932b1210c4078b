"""``GET /v1/messages/<queue-id>``: the state of a message, for the application that sent it.

An EHR that got ``250 2.0.0 Queued as <queue-id>`` can ask what became of each recipient
(issue 13 item 5). The request is authenticated with the submission account's own
credentials (HTTP Basic, RFC 7617), and an account sees only the messages it submitted:
another account's id, an unknown id and a malformed id all get the same 404, so ids cannot
be probed. Failed logins count towards the same lockouts as SMTP AUTH (see
:mod:`phigate.mta.submission.auth`: per user name and client IP, and a slower answer past the
name's tarpit threshold); while locked out the answer is 429 and no password is checked.

The answer names no PHI and nothing the sender did not give us: the queue id, the message's
state and class, and per recipient the address, state, attempts, when the next attempt is
due, and the last reply reduced to its codes (``451``, ``4.7.0``). Never a Subject, a
remote server's reply text, a hold reason or a scanner finding.

Basic credentials travel in clear without TLS: the listener refuses them from anywhere but
loopback unless the request came over TLS (serve it behind the TLS terminator that also
serves the pickup page). See docs/operations.md, "Telling the sending application".
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from phigate.accounts.store import Account, AccountStore
from phigate.mta.submission.auth import LockoutTracker, authenticate
from phigate.observability.logs import log_event
from phigate.queue.models import PENDING_RECIPIENT_STATES
from phigate.queue.store import SqlQueueStore, UnknownMessage
from phigate.queue.views import MessageView

log = logging.getLogger("phigate.message_status")

PATH = "/v1/messages/{queue_id}"
_QUEUE_ID = re.compile(r"[0-9A-F]{12,32}")
_STATUS = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_MAX_CREDENTIALS = 1024
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="phigate", charset="UTF-8"'}


@dataclass(frozen=True)
class _Credentials:
    user: str
    password: str


def add_message_status_routes(app: web.Application, *, accounts: AccountStore,
                              store: SqlQueueStore, lockouts: LockoutTracker) -> None:
    app.router.add_get(PATH, MessageStatus(accounts, store, lockouts).get)


class MessageStatus:
    def __init__(self, accounts: AccountStore, store: SqlQueueStore,
                 lockouts: LockoutTracker) -> None:
        self._accounts = accounts
        self._store = store
        self._lockouts = lockouts

    async def get(self, request: web.Request) -> web.Response:
        ip = request.remote or "unknown"
        credentials = _basic_credentials(request.headers.get("Authorization", ""))
        if credentials is None:
            return _error(401, "authentication required", _CHALLENGE)
        if not request.secure and not _loopback(ip):
            log_event(log, "status_refused_plaintext", level=logging.WARNING, ip=ip)
            return _error(403, "use HTTPS: credentials are not accepted over plain HTTP")
        login = await authenticate(self._lockouts, self._accounts, ip, credentials.user,
                                   credentials.password)
        if login.locked_for > 0:
            return _error(429, "too many failed logins; try again later",
                          {"Retry-After": str(math.ceil(login.locked_for))})
        account = login.account
        if account is None:
            log_event(log, "status_auth_failed", level=logging.WARNING, ip=ip)
            return _error(401, "authentication failed", _CHALLENGE)
        view = await self._own_message(account, request.match_info.get("queue_id", ""))
        if view is None:
            return _error(404, "no such message")
        return web.json_response(status_of(view), headers=_HEADERS)

    async def _own_message(self, account: Account, queue_id: str) -> MessageView | None:
        """The message if ``account`` submitted it; None otherwise (the same for every
        reason, so another account's ids cannot be told from unknown ones)."""
        if not _QUEUE_ID.fullmatch(queue_id):
            return None
        try:
            view = await asyncio.to_thread(self._store.get_message, queue_id)
        except UnknownMessage:
            return None
        return view if view.username == account.name else None


def status_of(view: MessageView) -> dict[str, Any]:
    """The JSON answer: states and codes only (see the module docstring)."""
    return {
        "id": view.id,
        "state": str(view.state),
        "class": view.message_class,
        "created_at": view.created_at.isoformat(),
        "recipients": [{
            "address": r.address,
            "state": str(r.state),
            "attempts": r.attempts,
            "next_attempt_at": (r.next_attempt_at.isoformat()
                                if r.state in PENDING_RECIPIENT_STATES else None),
            "last_code": r.last_code,
            "last_status": _status(r.last_text),
        } for r in view.recipients],
    }


def _status(text: str | None) -> str | None:
    match = _STATUS.match(text or "")
    return match.group(1) if match else None


def _basic_credentials(header: str) -> _Credentials | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value or len(value) > _MAX_CREDENTIALS:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        return None
    return _Credentials(user, password)


def _loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": text}, status=status,
                             headers={**_HEADERS, **(headers or {})})
