"""The submission server: aiosmtpd with STARTTLS, AUTH, limits, and a thin handler.

The handler asks policy, writes to the queue and replies; nothing is delivered here. A
``250`` is sent only after the message and its sealed body are committed.

:class:`PhigateSMTP` adapts aiosmtpd where a mail system needs more than it offers: enhanced
status codes (RFC 3463) on its built-in replies, password checks off the event loop with
lockouts, trusted networks, and a cap on concurrent sessions per client address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import formatdate, getaddresses
from typing import TYPE_CHECKING, Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from phigate.accounts.store import MESSAGE_CLASSES, Account, AccountStore
from phigate.mta.delivery.throttle import KeyedRateLimiter
from phigate.mta.submission.auth import LockoutTracker
from phigate.observability.logs import log_event
from phigate.observability.metrics import METRICS, ReceivedResult
from phigate.policy.addresses import valid_forward_path
from phigate.policy.engine import Action, Decision, PolicyContext, PolicyEngine
from phigate.queue.models import MessageState
from phigate.queue.store import NewMessage, SqlQueueStore

if TYPE_CHECKING:
    from phigate.config import Settings, SubmissionSettings
    from phigate.phi_scanner import ScannerPool, ScanResult

log = logging.getLogger("phigate.smtp")

CLASS_HEADER = "X-Phigate-Class"
CAMPAIGN_HEADER = "X-Phigate-Campaign"

# aiosmtpd's own replies lack enhanced status codes; these are the ones a client can meet.
_ENHANCED_REPLIES = {
    "530 Must issue a STARTTLS command first": "530 5.7.0 Must issue a STARTTLS command first",
    "552 Error: Too much mail data": "552 5.3.4 Message size exceeds fixed maximum message size",
    "552 Error: message size exceeds fixed maximum message size":
        "552 5.3.4 Message size exceeds fixed maximum message size",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)",
    "500 Command line too long": "500 5.5.2 Command line too long",
    "503 Error: need MAIL command": "503 5.5.1 Error: need MAIL command",
    "503 Error: need RCPT command": "503 5.5.1 Error: need RCPT command",
    "503 Error: nested MAIL command": "503 5.5.1 Error: nested MAIL command",
    "503 Already authenticated": "503 5.5.1 Already authenticated",
    "503 Error: send EHLO first": "503 5.5.1 Error: send EHLO first",
    "503 Error: send HELO first": "503 5.5.1 Error: send HELO first",
    "554 Command refused due to lack of security": "554 5.7.0 Command refused: TLS failed",
}

REPLY_TEMPFAIL_STORAGE_FULL = "452 4.3.1 Insufficient system storage, try again later"
REPLY_TEMPFAIL_STORAGE = "451 4.3.0 Temporary local problem storing the message, try again later"
REPLY_TEMPFAIL_POLICY = "451 4.3.0 Temporary local problem checking policy, try again later"
REPLY_TEMPFAIL_SCANNER = "451 4.3.0 Temporary local problem scanning the message, try again later"

def has_bare_line_ending(content: bytes) -> bool:
    """True if a CR or LF appears other than as CRLF, or a NUL anywhere.

    aiosmtpd only ends DATA at CRLF.CRLF, but such bytes would still travel on to the next
    hop, where a lenient server could read ``LF.LF`` as the end of data: the SMTP smuggling
    attack. Refusing them here keeps smuggled messages from ever leaving.
    """
    return b"\0" in content or content.count(b"\r") != content.count(b"\r\n") or (
        content.count(b"\n") != content.count(b"\r\n")
    )


@dataclass
class SubmissionServices:
    """Everything the submission server needs, built once by ``serve``."""

    settings: Settings
    accounts: AccountStore
    store: SqlQueueStore
    policy: PolicyEngine
    lockouts: LockoutTracker
    scanner: ScannerPool | None = None
    trusted_networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()
    sessions_per_ip: Counter[str] = field(default_factory=Counter)
    #: Per-account submission rate ([submission] rate_per_minute_per_user); None: no limit.
    user_rates: KeyedRateLimiter | None = None
    clock: Callable[[], float] = time.monotonic

    def is_trusted(self, ip: str | None) -> bool:
        if ip is None:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_networks)

    def trusted_account(self) -> Account:
        """Mail relayed for a trusted network may use the practice's domain, not marketing."""
        return Account("trusted-network", (self.settings.server.domain,),
                       ("treatment", "operations"))


def make_server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def _peer_ip(peer: Any) -> str | None:
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


class SubmissionHandler:
    """aiosmtpd hooks: validate, ask policy, enqueue, reply."""

    def __init__(self, services: SubmissionServices) -> None:
        self.services = services
        self.settings = services.settings

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's default reply quotes str(error), which can carry message data; and a
        # failure of ours is temporary from the client's point of view: nothing was queued.
        if isinstance(error, ssl.SSLError):
            METRICS.record_tls_handshake_failure("inbound")
        log_event(log, "session_error", level=logging.ERROR, error=type(error).__name__)
        return "451 4.3.0 Local error in processing, try again later"

    def _account(self, session: Session) -> Account | None:
        if isinstance(session.auth_data, Account):
            return session.auth_data
        if self.services.is_trusted(_peer_ip(session.peer)):
            return self.services.trusted_account()
        return None

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        account = self._account(session)
        if account is None:
            return "530 5.7.0 Authentication required"
        if not address or not account.may_send_as(address):
            log_event(log, "sender_refused", ip=_peer_ip(session.peer), user=account.name)
            return "553 5.7.1 Sender address not allowed for this account"
        rates = self.services.user_rates
        if rates is not None and not rates.allow(account.name, self.services.clock()):
            log_event(log, "user_rate_exceeded", level=logging.WARNING,
                      ip=_peer_ip(session.peer), user=account.name)
            return "451 4.7.1 Sending rate for this account exceeded, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        account = self._account(session)
        if account is None:
            return "530 5.7.0 Authentication required"
        if len(envelope.rcpt_tos) >= self.settings.submission.max_recipients:
            return "452 4.5.3 Too many recipients"
        if not valid_forward_path(address):
            return "550 5.1.3 Bad recipient address syntax"
        decision = await self._evaluate(
            PolicyContext(
                stage="rcpt", account=account, sender=envelope.mail_from or "",
                recipients=list(envelope.rcpt_tos), message_class=account.default_class,
                client_ip=_peer_ip(session.peer), recipient=address,
            ),
        )
        if decision is None:
            return REPLY_TEMPFAIL_POLICY
        for hit in decision.hits:
            METRICS.record_policy_decision(hit.rule, hit.action.label)
        if decision.action == Action.REJECT:
            log_event(log, "recipient_refused", ip=_peer_ip(session.peer), user=account.name,
                      rules=[h.rule for h in decision.hits])
            return decision.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        started = time.monotonic()
        account = self._account(session)
        ip = _peer_ip(session.peer)
        if account is None:
            return "530 5.7.0 Authentication required"
        content = envelope.original_content or b""
        if has_bare_line_ending(content):
            log_event(log, "refused_bare_line_ending", ip=ip, user=account.name)
            METRICS.record_received("rejected")
            return "550 5.6.0 Message refused: bare CR, bare LF or NUL in message data"
        headers = BytesHeaderParser(policy=default_policy).parsebytes(_header_block(content))
        refusal = self._check_headers(headers, account)
        if refusal:
            log_event(log, "refused_headers", ip=ip, user=account.name, reply=refusal[:9])
            METRICS.record_received("rejected")
            return refusal
        message_class = str(headers.get(CLASS_HEADER, "") or account.default_class).strip()
        campaign = str(headers.get(CAMPAIGN_HEADER, "") or "").strip() or None

        try:
            scan = await self._scan(content)
        except _ScanFailed:
            METRICS.record_received("tempfailed")
            return REPLY_TEMPFAIL_SCANNER
        # Every recipient is checked again here, for the header's class (see
        # phigate.policy.rules.checks: one failing recipient refuses the message).
        ctx = PolicyContext(
            stage="data", account=account, sender=envelope.mail_from or "",
            recipients=list(envelope.rcpt_tos), message_class=message_class,
            client_ip=ip, headers=headers, scan=scan, campaign_id=campaign,
        )
        body = self._with_trace_headers(content, headers, session)

        def decide_and_store() -> tuple[Decision, NewMessage | None, str | None]:
            # Policy lookups and the commit in one trip to a worker thread, not two: each
            # trip is a wake-up of the event loop and a wait in the thread pool's queue.
            decision = self._decide(ctx)
            if decision.action == Action.REJECT:
                return decision, None, None
            message = _new_message(ctx, envelope, body, decision)
            return decision, message, self.services.store.enqueue(message)

        try:
            decision, message, message_id = await asyncio.to_thread(decide_and_store)
        except _PolicyFailed:
            METRICS.record_received("tempfailed")
            return REPLY_TEMPFAIL_POLICY
        except OperationalError as error:
            full = "full" in str(error.orig).lower()
            log_event(log, "store_failed", level=logging.ERROR, ip=ip, user=account.name,
                      error=type(error.orig).__name__, disk_full=full)
            METRICS.record_received("tempfailed")
            return REPLY_TEMPFAIL_STORAGE_FULL if full else REPLY_TEMPFAIL_STORAGE
        except SQLAlchemyError as error:
            log_event(log, "store_failed", level=logging.ERROR, ip=ip, user=account.name,
                      error=type(error).__name__)
            METRICS.record_received("tempfailed")
            return REPLY_TEMPFAIL_STORAGE
        for hit in decision.hits:
            METRICS.record_policy_decision(hit.rule, hit.action.label)
        if message is None or message_id is None:  # refused by policy
            log_event(log, "refused_by_policy", ip=ip, user=account.name,
                      rules=[h.rule for h in decision.hits], verdict=_verdict(scan))
            METRICS.record_received("rejected")
            return decision.reply
        log_event(
            log, "accepted", id=message_id, ip=ip, user=account.name,
            rcpts=len(envelope.rcpt_tos), size=len(content), cls=message_class,
            verdict=_verdict(scan), categories=scan.categories if scan else [],
            action=decision.action.label, ms=round((time.monotonic() - started) * 1000, 1),
        )
        METRICS.record_received(_RECEIVED_RESULT[message.state])
        return f"250 2.0.0 Queued as {message_id}"

    async def _evaluate(self, ctx: PolicyContext) -> Decision | None:
        """The policy decision; None if a rule could not decide (the store failed).

        Rules query the store (suppressions, consent) and DNS, so they run off the event
        loop.
        """
        try:
            return await asyncio.to_thread(self._decide, ctx)
        except _PolicyFailed:
            return None

    def _decide(self, ctx: PolicyContext) -> Decision:
        """The policy decision (blocking: call it in a thread); raises :class:`_PolicyFailed`.

        A failure is a temporary refusal: never accept mail policy could not check, and
        never show the driver's message (it can quote addresses) to the client.
        """
        try:
            return self.services.policy.evaluate(ctx)
        except SQLAlchemyError as error:
            log_event(log, "policy_failed", level=logging.ERROR, stage=ctx.stage,
                      error=type(error).__name__)
            raise _PolicyFailed from None

    def _check_headers(self, headers: EmailMessage, account: Account) -> str | None:
        try:
            from_values = headers.get_all("From") or []
            addresses = [addr for _, addr in getaddresses([str(v) for v in from_values])]
        except (ValueError, TypeError, IndexError):
            return "550 5.6.0 Message refused: unparseable From: header"
        if len(from_values) != 1 or not addresses or not all(addresses):
            return "550 5.6.0 Message refused: exactly one From: header with an address required"
        if not all(account.may_send_as(address) for address in addresses):
            return "553 5.7.1 From: header address not allowed for this account"
        message_class = str(headers.get(CLASS_HEADER, "") or "").strip()
        if message_class and message_class not in MESSAGE_CLASSES:
            return f"550 5.7.1 Unknown message class in {CLASS_HEADER}"
        if message_class and message_class not in account.classes:
            return f"550 5.7.1 Message class {message_class} not permitted for this account"
        return None

    async def _scan(self, content: bytes) -> ScanResult | None:
        """The scan result; None when scanning is switched off. Raises _ScanFailed."""
        scanner = self.services.scanner
        if scanner is None:
            return None
        started = time.monotonic()
        try:
            result = await scanner.scan(content)
        except Exception as error:  # the pool itself broke: tempfail, never accept unscanned
            log_event(log, "scan_failed", level=logging.ERROR, error=type(error).__name__)
            raise _ScanFailed from None
        METRICS.observe_scan(time.monotonic() - started, result.verdict, result.categories)
        return result

    def _with_trace_headers(
        self, content: bytes, headers: EmailMessage, session: Session
    ) -> bytes:
        """Prepend Received:, and Message-ID:/Date: when the client left them out (RFC 6409)."""
        hostname = self.settings.server.hostname
        protocol = "ESMTPSA" if isinstance(session.auth_data, Account) else "ESMTPS"
        # The client's address is deliberately left out: it reveals the practice's internal
        # network to every recipient.
        lines = [f"Received: by {hostname} (phigate) with {protocol}; {formatdate()}"]
        if headers.get("Message-ID") is None:
            lines.append(f"Message-ID: <{uuid.uuid4().hex}@{hostname}>")
        if headers.get("Date") is None:
            lines.append(f"Date: {formatdate()}")
        return ("\r\n".join(lines) + "\r\n").encode("ascii") + content


def _header_block(content: bytes) -> bytes:
    """The header fields of ``content`` (line endings are CRLF here): parsing the body along
    with them only costs time on the event loop."""
    end = content.find(b"\r\n\r\n")
    return content if end < 0 else content[: end + 2]


def _verdict(scan: ScanResult | None) -> str:
    return scan.verdict if scan is not None else "none"


def _new_message(ctx: PolicyContext, envelope: Envelope, body: bytes,
                 decision: Decision) -> NewMessage:
    scan = ctx.scan
    return NewMessage(
        sender=envelope.mail_from or "",
        recipients=list(envelope.rcpt_tos),
        body=body,
        username=ctx.account.name if ctx.account else None,
        client_ip=ctx.client_ip,
        message_class=ctx.message_class,
        campaign_id=ctx.campaign_id,
        phi_verdict=_verdict(scan),
        phi_score=scan.score if scan else 0.0,
        phi_categories=scan.categories if scan else [],
        rule_hits=[hit.as_dict() for hit in decision.hits],
        state=_state_for(decision),
        # Why it waits, for the admin; an accepted (or only tagged) message does not wait.
        hold_reason=(decision.reason or None) if decision.action >= Action.HOLD else None,
    )


_RECEIVED_RESULT: dict[MessageState, ReceivedResult] = {
    MessageState.ACTIVE: "accepted",
    MessageState.QUARANTINED: "quarantined",
    MessageState.AWAITING_APPROVAL: "held",
}


def _state_for(decision: Decision) -> MessageState:
    if decision.action == Action.QUARANTINE:
        return MessageState.QUARANTINED
    if decision.action == Action.HOLD:
        return MessageState.AWAITING_APPROVAL
    return MessageState.ACTIVE


class _ScanFailed(Exception):
    """The scanner pool could not give a result (not: the message was unscannable)."""


class _PolicyFailed(Exception):
    """A rule could not decide (the store failed); logged where it happened."""


class PhigateSMTP(SMTP):
    """aiosmtpd's SMTP with phigate's limits, lockouts and enhanced status codes."""

    def __init__(self, handler: SubmissionHandler, *, tls_context: ssl.SSLContext,
                 loop: asyncio.AbstractEventLoop, implicit_tls: bool = False) -> None:
        settings = handler.settings.submission
        self.services = handler.services
        self._counted_ip: str | None = None
        self._refused = False
        with warnings.catch_warnings():
            # aiosmtpd warns that AUTH without required TLS is unsafe; on the implicit-TLS
            # listener every byte is already encrypted, so the warning does not apply.
            if implicit_tls:
                warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            self._init_smtp(handler, settings, tls_context, loop, implicit_tls)

    def _init_smtp(self, handler: SubmissionHandler, settings: SubmissionSettings,
                   tls_context: ssl.SSLContext, loop: asyncio.AbstractEventLoop,
                   implicit_tls: bool) -> None:
        super().__init__(
            handler,
            data_size_limit=settings.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=handler.settings.server.hostname,
            ident="phigate",
            # On the implicit-TLS listener the socket is TLS from the first byte (the server
            # wraps it), so aiosmtpd must neither offer STARTTLS nor wait for it.
            tls_context=None if implicit_tls else tls_context,
            require_starttls=not implicit_tls,
            timeout=settings.timeout_seconds,
            auth_required=True,
            auth_require_tls=not implicit_tls,
            command_call_limit=settings.max_commands,
            loop=loop,
        )

    # -- connection limits --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:  # a new connection, not the STARTTLS upgrade
            ip = _peer_ip(transport.get_extra_info("peername")) or "unknown"
            limit = self.services.settings.submission.max_sessions_per_ip
            if self.services.sessions_per_ip[ip] >= limit:
                self._refused = True
                log_event(log, "too_many_sessions", level=logging.WARNING, ip=ip)
                if isinstance(transport, asyncio.WriteTransport):
                    transport.write(b"421 4.7.0 Too many connections from your address, "
                                    b"try again later\r\n")
                transport.close()
                return
            self.services.sessions_per_ip[ip] += 1
            self._counted_ip = ip
            METRICS.smtp_sessions.labels(listener="submission").inc()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._counted_ip is not None:
            METRICS.smtp_sessions.labels(listener="submission").dec()
            self.services.sessions_per_ip[self._counted_ip] -= 1
            if self.services.sessions_per_ip[self._counted_ip] <= 0:
                del self.services.sessions_per_ip[self._counted_ip]
            self._counted_ip = None
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()

    # -- replies ------------------------------------------------------------------------

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            await super().push(_ENHANCED_REPLIES.get(status, status))
        else:
            await super().push(status)

    async def check_auth_needed(self, caller_method: str) -> bool:
        if self.session is not None and self.services.is_trusted(_peer_ip(self.session.peer)):
            return False
        return await super().check_auth_needed(caller_method)

    # -- authentication -----------------------------------------------------------------

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        # aiosmtpd calls this synchronously, but a scrypt check takes tens of milliseconds:
        # hand the credentials back to our async auth_* wrappers instead of blocking the loop.
        return AuthResult(success=False, handled=False, auth_data=_Pending(auth_data))

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_LOGIN(_, args))

    async def _verify(self, result: AuthResult) -> AuthResult:
        if not isinstance(result.auth_data, _Pending):
            return result
        credentials = result.auth_data.credentials
        if not isinstance(credentials, LoginPassword) or self.session is None:
            return AuthResult(success=False, handled=False)
        ip = _peer_ip(self.session.peer) or "unknown"
        user = credentials.login.decode("utf-8", "replace")
        password = credentials.password.decode("utf-8", "replace")
        lockouts = self.services.lockouts
        if lockouts.locked_for(ip, user) > 0:
            log_event(log, "auth_locked_out", level=logging.WARNING, ip=ip)
            METRICS.record_auth_failure("locked_out")
            return AuthResult(success=False, handled=False,
                              message="454 4.7.0 Too many failed logins, try again later")
        account = await asyncio.to_thread(self.services.accounts.authenticate, user, password)
        if account is None:
            METRICS.record_auth_failure("bad_credentials")
            for kind in lockouts.failure(ip, user):
                METRICS.record_auth_lockout(kind)
            log_event(log, "auth_failed", level=logging.WARNING, ip=ip,
                      failures_total=lockouts.failures_total)
            return AuthResult(success=False, handled=False)
        lockouts.success(ip, user)
        log_event(log, "auth_ok", ip=ip, user=account.name)
        return AuthResult(success=True, handled=False, auth_data=account)


def silence_aiosmtpd_log() -> None:
    """aiosmtpd logs command lines and message lines (addresses, content) at debug level and
    some at info and warning: whatever the configured level, none of it may reach a log.
    phigate logs its own structured events instead."""
    aiosmtpd_log = logging.getLogger("mail.log")
    aiosmtpd_log.setLevel(logging.CRITICAL + 1)
    aiosmtpd_log.propagate = False


@dataclass(frozen=True)
class _Pending:
    credentials: Any


async def start_submission_server(
    services: SubmissionServices, *, host: str, port: int, implicit_tls: bool = False
) -> asyncio.Server:
    """Listen for submission on ``host:port``: STARTTLS required, or TLS from the start."""
    silence_aiosmtpd_log()
    settings = services.settings.submission
    tls_context = make_server_tls_context(str(settings.tls_cert), str(settings.tls_key))
    handler = SubmissionHandler(services)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: PhigateSMTP(handler, tls_context=tls_context, loop=loop,
                            implicit_tls=implicit_tls),
        host=host, port=port, ssl=tls_context if implicit_tls else None,
    )
