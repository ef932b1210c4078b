"""The outbound SMTP client: one message, the recipients of one destination, one attempt.

:class:`SmtpTransport` routes (MX or smarthost), connects with the TLS the content needs,
sends MAIL/RCPT/DATA with aiosmtplib and returns per-recipient outcomes; it raises nothing
for a failed delivery. Connections are kept for a few seconds after a transaction, so the
next message to the same host reuses them.

A kept connection is always between transactions: it is checked in only after a completed
DATA, after the RSET that ends a transaction whose recipients were all refused, or before
MAIL was sent; any other failure closes it. So nothing is sent before reusing it (no NOOP
or RSET probe: a round trip and CPU on both sides per message). Postfix's smtp(8) probes
connections it takes from scache(8) with RSET because another process left them there; a
server that closed a kept connection meanwhile is seen here, in the same process, as the
connection's loss (not reused), or, when the close crosses our MAIL, as a lost connection
with no reply (a 421 or a timeout is that attempt's outcome). Nothing of the message has
been accepted then, so it is sent again at once over a fresh connection
(:func:`_closed_meanwhile`), never deferred or lost.

Failure handling, by stage:

- routing (DNS) failure: every recipient gets it (NXDOMAIN / null MX permanent, else
  temporary);
- connecting, greeting, EHLO, STARTTLS, AUTH, or a host that cannot meet the TLS level:
  the next address / next MX is tried; when all fail, the last failure is every recipient's;
- MAIL refused: every recipient; RCPT refused: that recipient; DATA refused: the accepted
  recipients; a dropped connection mid-transaction: temporary for all not yet final.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiosmtplib

from phigate.config import DeliverySettings
from phigate.mta.delivery.esmtp import ehlo, mail_options, needs_smtputf8, tls_info
from phigate.mta.delivery.outcomes import (
    PLAINTEXT,
    AttemptResult,
    Backoff,
    DeliveryError,
    Failure,
    RecipientOutcome,
    TlsInfo,
    TlsPolicyError,
    outcome_for_exception,
)
from phigate.mta.delivery.routing import NextHop, Router
from phigate.mta.delivery.secure import Demands, TlsPolicy
from phigate.mta.delivery.security import (
    DeliverySecurity,
    HopPlan,
    check_after_handshake,
)
from phigate.mta.delivery.tls_policy import TlsContexts, refusal_reason, tls_level_for
from phigate.observability.logs import log_event

log = logging.getLogger(__name__)

#: Seconds an idle connection is kept for reuse, and the longest life of a connection
#: (Postfix: smtp_connection_cache_time_limit, smtp_connection_reuse_time_limit).
IDLE_SECONDS = 5.0
REUSE_SECONDS = 300.0


@dataclass(frozen=True)
class OutboundMessage:
    """One message for the recipients of one destination domain."""

    sender: str  # "" for the null sender (DSNs)
    recipients: Sequence[str]
    domain: str
    content: bytes  # final bytes: signed, X-Phigate-* headers removed
    phi: bool = False
    #: For logs only (never addresses or content).
    message_id: str = ""
    #: Sent with REQUIRETLS (RFC 8689): verified TLS to hops that offer it, flag passed on.
    require_tls: bool = False
    #: ``TLS-Required: No`` (RFC 8689 5): honoured only without PHI and without REQUIRETLS.
    tls_optional: bool = False


class Transport(Protocol):
    """Delivers one message to the recipients of one domain; never raises for a failure.

    Returns one :class:`RecipientOutcome` per recipient, in order, and the TLS facts of the
    connection used. May be called concurrently; ``aclose`` closes kept connections.
    """

    async def deliver(self, message: OutboundMessage) -> AttemptResult: ...

    async def aclose(self) -> None: ...


@dataclass(eq=False)
class _Connection:
    smtp: aiosmtplib.SMTP
    hop: NextHop
    address: str
    tls: TlsInfo
    opened_at: float
    policy: TlsPolicy = TlsPolicy.OPPORTUNISTIC
    requiretls: bool = False
    idle_since: float = 0.0
    #: Transactions ended on it (checked in); more than 0: a kept connection being reused.
    transactions: int = 0
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.label = self.hop.label(self.address)

    def meets(self, plan: HopPlan, require_tls: bool) -> bool:
        # Reused only under the same policy it was opened for (a DANE-checked connection
        # is not a WebPKI-verified one), and with REQUIRETLS only where the host offers it.
        return self.policy is plan.policy.policy and (self.requiretls or not require_tls)

    def close(self) -> None:
        _close(self.smtp)


class SmtpTransport:
    """:class:`Transport` over SMTP with aiosmtplib."""

    def __init__(self, settings: DeliverySettings, *, local_hostname: str,
                 router: Router | None = None, smarthost_password: str = "",
                 security: DeliverySecurity | None = None) -> None:
        self._settings = settings
        self._local_hostname = local_hostname
        self._router = router or Router(settings)
        self._security = security or DeliverySecurity()
        self._contexts = TlsContexts(settings.ca_file)
        self._password = smarthost_password
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}

    async def deliver(self, message: OutboundMessage) -> AttemptResult:
        started = time.monotonic()
        demands = self._demands(message)
        try:
            hops = await self._router.next_hops(message.domain)
            plans = await self._security.plan(message.domain, hops, demands)
        except Exception as error:  # every failure becomes an outcome, see module doc
            return self._all(message, None, PLAINTEXT, outcome_for_exception(error), started)
        failure = Failure(451, "4.4.0 no host tried", False)
        host: str | None = None
        policy: TlsPolicy | None = None
        slow = False  # a host's reply asked us to slow down
        refused = False  # a host refused the connection
        for plan in plans:
            policy = plan.policy.policy
            if plan.policy.refusal is not None:
                # Never connected to (MTA-STS enforce: not a listed MX; DNSSEC failure).
                self._security.count(message.domain, plan, self._security.refusal_result(plan))
                failure = outcome_for_exception(TlsPolicyError(plan.policy.refusal))
                host = plan.hop.name
                continue
            for address in plan.hop.addresses:
                try:
                    connection = await self._checkout(plan, address, message)
                    done = await self._transaction(connection, message)
                    while done is None:  # the kept connection was gone: a fresh one (once:
                        # a fresh connection's transaction never gives None; module doc)
                        connection = await self._open_counted(plan, address, message)
                        done = await self._transaction(connection, message)
                except Exception as error:  # connecting failed (a transaction never raises)
                    failure = outcome_for_exception(error)
                    host = plan.hop.label(address)
                    if failure.backoff is Backoff.SLOW_DOWN:
                        slow |= failure.remote
                        refused |= not failure.remote
                    log_event(log, "delivery_host_failed", id=message.message_id,
                              code=failure.code)
                    continue
                outcomes, slow_here = done
                return AttemptResult(connection.label, connection.tls, outcomes,
                                     time.monotonic() - started, Backoff.of(slow or slow_here),
                                     tls_policy=str(connection.policy))
        # No host took it: refusals count now (one refusing MX beside a working one does not).
        result = self._all(message, host, PLAINTEXT, failure, started,
                           Backoff.of(slow or refused))
        return dataclasses.replace(result, tls_policy=str(policy) if policy else None)

    def _demands(self, message: OutboundMessage) -> Demands:
        domain = self._settings.domains.get(message.domain.lower())
        return Demands(tls_level_for(self._settings, message.domain, phi=message.phi),
                       phi=message.phi, admin_policy=bool(domain and domain.tls),
                       require_tls=message.require_tls,
                       relaxed=message.tls_optional and not message.require_tls)

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                await _quit(connection)
        self._idle.clear()
        await self._security.aclose()

    # -- connections ------------------------------------------------------------------

    async def _checkout(self, plan: HopPlan, address: str,
                        message: OutboundMessage) -> _Connection:
        hop = plan.hop
        now = time.monotonic()
        kept = self._idle.get((hop.name, address, hop.port), [])
        while kept:
            connection = kept.pop()
            fresh = (now - connection.idle_since < IDLE_SECONDS
                     and now - connection.opened_at < REUSE_SECONDS)
            if fresh and connection.smtp.is_connected and connection.meets(
                    plan, message.require_tls):
                return connection  # between transactions: nothing to send first (module doc)
            connection.close()
        return await self._open_counted(plan, address, message)

    async def _open_counted(self, plan: HopPlan, address: str,
                            message: OutboundMessage) -> _Connection:
        return await self._security.open_counted(
            message.domain, plan, lambda p: self._open(p, address, message))

    def _checkin(self, connection: _Connection) -> None:
        connection.transactions += 1
        connection.idle_since = time.monotonic()
        key = (connection.hop.name, connection.address, connection.hop.port)
        self._idle.setdefault(key, []).append(connection)

    async def _open(self, plan: HopPlan, address: str, message: OutboundMessage) -> _Connection:
        settings, hop, policy = self._settings, plan.hop, plan.policy.policy
        implicit = hop.smarthost and settings.smarthost_tls == "implicit"
        context = self._contexts.for_level(policy.level)
        if implicit:
            # aiosmtplib verifies implicit TLS against ``hostname``: connect the socket to
            # the address ourselves and hand it over with the host *name*.
            sock = await _connect_socket(address, hop.port, settings.connect_timeout_seconds)
            smtp = aiosmtplib.SMTP(hostname=hop.name, sock=sock, use_tls=True,
                                   tls_context=context, local_hostname=self._local_hostname,
                                   timeout=settings.command_timeout_seconds)
        else:
            smtp = aiosmtplib.SMTP(hostname=address, port=hop.port, start_tls=False,
                                   local_hostname=self._local_hostname,
                                   timeout=settings.command_timeout_seconds)
        try:
            await smtp.connect(timeout=settings.connect_timeout_seconds)
            await ehlo(smtp)
            if not implicit:
                if smtp.supports_extension("starttls"):
                    await smtp.starttls(server_hostname=hop.name, tls_context=context)
                    await ehlo(smtp)
                elif policy.needs_tls or message.require_tls:
                    raise TlsPolicyError(refusal_reason(policy.level, hop.name,
                                                        phi=message.phi))
            verified = False
            if smtp.get_transport_info("ssl_object") is not None:
                verified = check_after_handshake(smtp, plan, require_tls=message.require_tls)
            tls = tls_info(smtp, verified=verified)
            if hop.smarthost and settings.smarthost_username:
                await self._login(smtp, tls)
        except BaseException:
            _close(smtp)
            raise
        return _Connection(smtp, hop, address, tls, time.monotonic(), policy,
                           smtp.supports_extension("requiretls"))

    async def _login(self, smtp: aiosmtplib.SMTP, tls: TlsInfo) -> None:
        if not tls.encrypted:
            raise TlsPolicyError("smarthost offers no STARTTLS: refusing to send the password "
                                 "in clear")
        try:
            await smtp.login(self._settings.smarthost_username, self._password)
        except aiosmtplib.SMTPAuthenticationError as error:
            # Wrong credentials are our configuration's fault: defer, never bounce the mail.
            raise DeliveryError(454, f"4.7.0 smarthost authentication failed ({error.code})",
                                permanent=False) from error

    # -- one transaction ----------------------------------------------------------------

    async def _transaction(self, connection: _Connection, message: OutboundMessage
                           ) -> tuple[list[RecipientOutcome], bool] | None:
        """The outcomes and whether a reply asked us to slow down; None when a reused
        connection turned out closed at MAIL (closed here; nothing was accepted)."""
        smtp = connection.smtp
        final: dict[str, RecipientOutcome] = {}
        accepted: list[str] = []
        slow = False  # a reply asked us to slow down
        stage: str | None = None  # the command under way, for the bounce reason
        try:
            utf8 = needs_smtputf8(message)
            if utf8 and not smtp.supports_extension("smtputf8"):
                failure = Failure(553, "5.6.7 non-ASCII address and the server does not offer "
                                  "SMTPUTF8", True)
                self._checkin(connection)
                return [failure.for_recipient(r) for r in message.recipients], False
            options = mail_options(smtp, message, utf8, connection.tls.cert_verified)
            encoding = "utf-8" if utf8 else "ascii"
            stage = "mail"
            await smtp.mail(message.sender, options=options, encoding=encoding)
            stage = "rcpt"
            for recipient in message.recipients:
                try:
                    await smtp.rcpt(recipient, encoding=encoding)
                    accepted.append(recipient)
                except aiosmtplib.SMTPRecipientRefused as refused:
                    final[recipient] = outcome_for_exception(refused).for_recipient(
                        recipient, "rcpt")
                    slow |= final[recipient].backoff is Backoff.SLOW_DOWN
                    if refused.code == 421:  # the server is closing the connection
                        raise
            if accepted:
                stage = "data"
                reply = await smtp.data(message.content)
                for recipient in accepted:
                    final[recipient] = RecipientOutcome(
                        recipient, reply.code, " ".join(reply.message.split()), remote=True,
                        stage="data")
            else:
                await smtp.rset()
            self._checkin(connection)
        except asyncio.CancelledError:
            connection.close()  # stopped mid-transaction: the recipients stay queued
            raise
        except Exception as error:
            if stage == "mail" and connection.transactions and _closed_meanwhile(error):
                log_event(log, "delivery_kept_connection_gone", level=logging.DEBUG,
                          id=message.message_id)
                await _quit(connection)
                return None
            failure = outcome_for_exception(error)
            slow |= failure.backoff is Backoff.SLOW_DOWN
            log_event(log, "delivery_transaction_failed", id=message.message_id,
                      code=failure.code)
            for recipient in message.recipients:
                final.setdefault(recipient, failure.for_recipient(recipient, stage))
            await _quit(connection)
        return [final[r] for r in message.recipients], slow

    @staticmethod
    def _all(message: OutboundMessage, host: str | None, tls: TlsInfo, failure: Failure,
             started: float, backoff: Backoff = Backoff.NONE) -> AttemptResult:
        return AttemptResult(host, tls, [failure.for_recipient(r) for r in message.recipients],
                             time.monotonic() - started, backoff)


def _closed_meanwhile(error: Exception) -> bool:
    """How a kept connection the server has closed meanwhile fails our MAIL: it is lost,
    with no reply (aiosmtplib's SMTPServerDisconnected is a ConnectionError).

    A reply is the server's word and a timeout a server that is there but slow: both are
    this attempt's outcome (a 421 slows the destination), not a reason to try again at once
    (an attempt reaches the server once; tests/faults/test_receiving_side.py)."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return False
    return isinstance(error, ConnectionError) and not isinstance(error, TimeoutError)


async def _connect_socket(address: str, port: int, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (address, port)),
                               timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def _close(smtp: aiosmtplib.SMTP) -> None:
    transport = smtp.transport
    smtp.close()
    _abort(transport)


def _abort(transport: asyncio.BaseTransport | None) -> None:
    # SMTP.close() starts a graceful TLS shutdown that can outlive the event loop (and
    # leak the socket); after QUIT or a failure there is nothing left to say: abort.
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()


async def _quit(connection: _Connection) -> None:
    transport = connection.smtp.transport  # quit() forgets it; abort it afterwards
    try:
        if connection.smtp.is_connected:
            await asyncio.wait_for(connection.smtp.quit(), 5)
    except Exception:  # noqa: S110 - closing anyway
        pass
    finally:
        connection.close()
        _abort(transport)
