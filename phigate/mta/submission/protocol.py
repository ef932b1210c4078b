"""aiosmtpd's SMTP adapted where a mail system needs more than it offers: enhanced status
codes (RFC 3463) on its built-in replies, password checks off the event loop with lockouts,
trusted networks, and a cap on concurrent sessions per client address."""

from __future__ import annotations

import asyncio
import logging
import ssl
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from phigate.mta.submission.auth import authenticate
from phigate.mta.submission.data_reader import ChunkedDataMixin
from phigate.mta.submission.fast_address import simple_angle_addr
from phigate.mta.submission.requiretls import RequireTlsMixin
from phigate.mta.submission.services import peer_ip
from phigate.mta.submission.sessions import SessionCap, refuse_full, say_shutting_down
from phigate.observability.logs import log_event
from phigate.observability.metrics import METRICS

if TYPE_CHECKING:
    from phigate.config import SubmissionSettings
    from phigate.mta.submission.server import SubmissionHandler

log = logging.getLogger("phigate.smtp")

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


class PhigateSMTP(ChunkedDataMixin, RequireTlsMixin, SMTP):
    """aiosmtpd's SMTP with phigate's limits, lockouts and enhanced status codes."""

    def __init__(self, handler: SubmissionHandler, *, tls_context: ssl.SSLContext,
                 loop: asyncio.AbstractEventLoop, cap: SessionCap,
                 implicit_tls: bool = False) -> None:
        settings = handler.settings.submission
        self.services = handler.services
        self.cap = cap
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
            ip = peer_ip(transport.get_extra_info("peername")) or "unknown"
            limit = self.services.settings.submission.max_sessions_per_ip
            if self.services.sessions_per_ip[ip] >= limit:
                self._refused = True
                log_event(log, "too_many_sessions", level=logging.WARNING, ip=ip)
                refuse_full(transport, b"421 4.7.0 Too many connections from your address, "
                                       b"try again later\r\n")
                return
            if not self.cap.try_open():
                self._refused = True
                refuse_full(transport)
                return
            self.services.sessions_per_ip[ip] += 1
            self.services.open_sessions.add(self)
            self._counted_ip = ip
            METRICS.smtp_sessions.labels(listener="submission").inc()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._counted_ip is not None:
            METRICS.smtp_sessions.labels(listener="submission").dec()
            self.cap.close()
            self.services.open_sessions.discard(self)
            self.services.sessions_per_ip[self._counted_ip] -= 1
            if self.services.sessions_per_ip[self._counted_ip] <= 0:
                del self.services.sessions_per_ip[self._counted_ip]
            self._counted_ip = None
        super().connection_lost(error)

    def say_shutting_down(self) -> None:
        """The grace period is over: 421 4.3.2 and close (see serve_stop)."""
        say_shutting_down(self.transport)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()

    # -- addresses ----------------------------------------------------------------------

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's MAIL/RCPT address parsing, with a fast path for plain addresses
        (see :mod:`phigate.mta.submission.fast_address`); the same result either way."""
        simple = simple_angle_addr(arg) if arg else None
        if simple is None:
            return super()._getaddr(arg)
        address, rest = simple
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    # -- replies ------------------------------------------------------------------------

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            await super().push(_ENHANCED_REPLIES.get(status, status))
        else:
            await super().push(status)

    async def check_auth_needed(self, caller_method: str) -> bool:
        if self.session is not None and self.services.is_trusted(peer_ip(self.session.peer)):
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
        ip = peer_ip(self.session.peer) or "unknown"
        user = credentials.login.decode("utf-8", "replace")
        password = credentials.password.decode("utf-8", "replace")
        lockouts = self.services.lockouts
        login = await authenticate(lockouts, self.services.accounts, ip, user, password)
        if login.locked_for > 0:
            log_event(log, "auth_locked_out", level=logging.WARNING, ip=ip)
            METRICS.record_auth_failure("locked_out")
            return AuthResult(success=False, handled=False,
                              message="454 4.7.0 Too many failed logins, try again later")
        account = login.account
        if account is None:
            METRICS.record_auth_failure("bad_credentials")
            log_event(log, "auth_failed", level=logging.WARNING, ip=ip,
                      failures_total=lockouts.failures_total)
            return AuthResult(success=False, handled=False)
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
