"""The submission server: aiosmtpd with STARTTLS, AUTH, limits, and a thin handler.

The handler asks policy, writes to the queue and replies; nothing is delivered here. A
``250`` is sent only after the message and its sealed body are committed. DATA runs as named
steps (:meth:`SubmissionHandler.handle_DATA`). aiosmtpd's protocol tweaks live in
:mod:`phigate.mta.submission.protocol`, what the server is given in
:mod:`phigate.mta.submission.services`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from email.utils import formatdate
from typing import TYPE_CHECKING

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from phigate.accounts.store import Account
from phigate.mta.delivery.review_notices import enqueue_and_notify
from phigate.mta.header_block import HeaderBlock
from phigate.mta.submission.data_checks import (
    REPLY_CHECK_TIMEOUT,
    CheckedData,
    check_data_off_loop,
)
from phigate.mta.submission.protocol import PhigateSMTP, silence_aiosmtpd_log
from phigate.mta.submission.refusals import Refusal
from phigate.mta.submission.requiretls import requires_tls
from phigate.mta.submission.services import SubmissionServices, peer_ip
from phigate.mta.submission.sessions import SessionCap
from phigate.observability import timing
from phigate.observability.labels import ReceivedResultLabel
from phigate.observability.logs import log_event
from phigate.observability.metrics import METRICS
from phigate.policy.addresses import valid_forward_path
from phigate.policy.engine import Action, Decision, PolicyContext, Stage
from phigate.queue.models import MessageState
from phigate.queue.store import NewMessage

if TYPE_CHECKING:
    from phigate.phi_scanner import ScanResult

__all__ = ["SubmissionHandler", "SubmissionServices", "make_server_tls_context",
           "start_submission_server"]

log = logging.getLogger("phigate.smtp")

REPLY_TEMPFAIL_STORAGE_FULL = "452 4.3.1 Insufficient system storage, try again later"
REPLY_TEMPFAIL_STORAGE = "451 4.3.0 Temporary local problem storing the message, try again later"
REPLY_TEMPFAIL_POLICY = "451 4.3.0 Temporary local problem checking policy, try again later"
REPLY_TEMPFAIL_SCANNER = "451 4.3.0 Temporary local problem scanning the message, try again later"


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
        if self.services.is_trusted(peer_ip(session.peer)):
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
            log_event(log, "sender_refused", ip=peer_ip(session.peer), user=account.name)
            return "553 5.7.1 Sender address not allowed for this account"
        rates = self.services.user_rates
        if rates is not None and not rates.allow(account.name, self.services.clock()):
            log_event(log, "user_rate_exceeded", level=logging.WARNING,
                      ip=peer_ip(session.peer), user=account.name)
            return "451 4.7.1 Sending rate for this account exceeded, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        timing.begin_transaction()  # the accept_timing line's stages, from here to the 250
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
        timing.lap("client")  # the client's RCPT on its way: its turn, the wire, the loop
        decision = await self._evaluate(
            PolicyContext(
                stage=Stage.RCPT, account=account, sender=envelope.mail_from or "",
                recipients=list(envelope.rcpt_tos), message_class=account.default_class,
                client_ip=peer_ip(session.peer), recipient=address,
                suppressions=_suppression_memo(envelope),
            ),
        )
        if decision is None:
            return REPLY_TEMPFAIL_POLICY
        for hit in decision.hits:
            METRICS.record_policy_decision(hit.rule, hit.action.label)
        if decision.action == Action.REJECT:
            log_event(log, "recipient_refused", ip=peer_ip(session.peer), user=account.name,
                      rules=[h.rule for h in decision.hits])
            return decision.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """DATA's steps, in order; a step that refuses raises :class:`_Reply`, counted once."""
        started = time.monotonic()
        account = self._account(session)
        if account is None:
            return "530 5.7.0 Authentication required"
        ip = peer_ip(session.peer)
        content = envelope.original_content or b""
        try:
            checked = await self._checked(content, account, ip)
            with timing.lapped("scan"):  # the wait for a free worker included
                scan = await self._scan_or_tempfail(checked.content)
            ctx = self._data_context(envelope, account, ip, checked, scan)
            body = self._with_trace_headers(checked.content, checked.header, session)
            decision, stored = await self._decide_and_store(ctx, envelope, body)
            message, message_id = self._stored_or_refused(ctx, decision, stored)
        except _Reply as reply:
            METRICS.record_received(reply.result)
            timing.end_transaction()
            return reply.text
        timing.log_accepted(log, message_id)
        log_event(
            log, "accepted", id=message_id, ip=ip, user=account.name,
            rcpts=len(envelope.rcpt_tos), size=len(content), cls=ctx.message_class,
            verdict=_verdict(scan), categories=scan.categories if scan else [],
            action=decision.action.label, ms=round((time.monotonic() - started) * 1000, 1),
        )
        METRICS.record_received(_RECEIVED_RESULT[message.state])
        return f"250 2.0.0 Queued as {message_id}"

    # -- DATA's steps ---------------------------------------------------------------------

    async def _checked(self, content: bytes, account: Account, ip: str | None
                       ) -> CheckedData:
        """The checked header and the bytes to queue, off the event loop (bounded)."""
        checked = await check_data_off_loop(content, account)
        if checked is None:
            log_event(log, "header_check_timeout", level=logging.WARNING, ip=ip,
                      user=account.name, size=len(content))
            raise _Reply("tempfailed", REPLY_CHECK_TIMEOUT)
        if isinstance(checked, Refusal):
            log_event(log, "refused_headers", ip=ip, user=account.name,
                      reason=checked.reason.value)
            raise _Reply("rejected", checked.reply)
        return checked

    async def _scan_or_tempfail(self, content: bytes) -> ScanResult | None:
        try:
            return await self._scan(content)
        except _ScanFailed:
            raise _Reply("tempfailed", REPLY_TEMPFAIL_SCANNER) from None

    def _data_context(self, envelope: Envelope, account: Account, ip: str | None,
                      checked: CheckedData, scan: ScanResult | None) -> PolicyContext:
        """Every recipient is checked again at DATA, for the header's class (see
        phigate.policy.rules: one failing recipient refuses the message)."""
        return PolicyContext(
            stage=Stage.DATA, account=account, sender=envelope.mail_from or "",
            recipients=list(envelope.rcpt_tos), message_class=checked.message_class,
            client_ip=ip, headers=checked.header, scan=scan, campaign_id=checked.campaign_id,
            suppressions=_suppression_memo(envelope),
        )

    async def _decide_and_store(
        self, ctx: PolicyContext, envelope: Envelope, body: bytes,
    ) -> tuple[Decision, tuple[NewMessage, str] | None]:
        """The decision and, unless it refuses, the committed message and its id.

        Policy lookups and the commit run in one trip to a worker thread, not two: each trip
        is a wake-up of the event loop and a wait in the thread pool's queue.
        """
        def decide_and_store() -> tuple[Decision, tuple[NewMessage, str] | None]:
            with timing.timed("decide"):
                decision = self._decide(ctx)
            if decision.action == Action.REJECT:
                return decision, None
            message = _new_message(ctx, envelope, body, decision)
            stored = enqueue_and_notify(self.services.store, self.settings, message)
            return decision, (message, stored)

        user = ctx.account.name if ctx.account else None
        try:
            return await asyncio.to_thread(timing.off_loop("store", decide_and_store))
        except _PolicyFailed:
            raise _Reply("tempfailed", REPLY_TEMPFAIL_POLICY) from None
        except OperationalError as error:
            full = "full" in str(error.orig).lower()
            log_event(log, "store_failed", level=logging.ERROR, ip=ctx.client_ip, user=user,
                      error=type(error.orig).__name__, disk_full=full)
            reply = REPLY_TEMPFAIL_STORAGE_FULL if full else REPLY_TEMPFAIL_STORAGE
            raise _Reply("tempfailed", reply) from None
        except SQLAlchemyError as error:
            log_event(log, "store_failed", level=logging.ERROR, ip=ctx.client_ip, user=user,
                      error=type(error).__name__)
            raise _Reply("tempfailed", REPLY_TEMPFAIL_STORAGE) from None
        finally:
            timing.resumed("store")

    def _stored_or_refused(self, ctx: PolicyContext, decision: Decision,
                           stored: tuple[NewMessage, str] | None) -> tuple[NewMessage, str]:
        for hit in decision.hits:
            METRICS.record_policy_decision(hit.rule, hit.action.label)
        if stored is None:
            log_event(log, "refused_by_policy", ip=ctx.client_ip,
                      user=ctx.account.name if ctx.account else None,
                      rules=[h.rule for h in decision.hits], verdict=_verdict(ctx.scan))
            raise _Reply("rejected", decision.reply)
        return stored

    # -- policy, headers, scanning ----------------------------------------------------------

    async def _evaluate(self, ctx: PolicyContext) -> Decision | None:
        """The policy decision; None if a rule could not decide (the store failed).

        Rules query the store (suppressions, consent) and DNS, so they run off the event
        loop.
        """
        try:
            return await asyncio.to_thread(timing.off_loop("rcpt", self._decide, ctx))
        except _PolicyFailed:
            return None
        finally:
            timing.resumed("rcpt")

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
        self, content: bytes, headers: HeaderBlock, session: Session
    ) -> bytes:
        """Prepend Received:, and Message-ID:/Date: when the client left them out (RFC 6409)."""
        hostname = self.settings.server.hostname
        protocol = "ESMTPSA" if isinstance(session.auth_data, Account) else "ESMTPS"
        # The client's address is deliberately left out: it reveals the practice's internal
        # network to every recipient.
        now = formatdate()  # one instant for both fields (and one call, not two)
        lines = [f"Received: by {hostname} (phigate) with {protocol}; {now}"]
        if not headers.has("Message-ID"):
            lines.append(f"Message-ID: <{uuid.uuid4().hex}@{hostname}>")
        if not headers.has("Date"):
            lines.append(f"Date: {now}")
        return ("\r\n".join(lines) + "\r\n").encode("ascii") + content


def _suppression_memo(envelope: Envelope) -> dict[str, frozenset[str]]:
    """The suppression scopes looked up in this transaction (RCPT's, reused at DATA: one
    store query per recipient, not two). aiosmtpd starts a new Envelope for every
    transaction, so nothing outlives it."""
    memo: dict[str, frozenset[str]] | None = getattr(envelope, "phigate_suppressions", None)
    if memo is None:
        memo = {}
        setattr(envelope, "phigate_suppressions", memo)  # noqa: B010 - not an Envelope field
    return memo


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
        require_tls=requires_tls(envelope),  # MAIL FROM:<...> REQUIRETLS (RFC 8689)
    )


_RECEIVED_RESULT: dict[MessageState, ReceivedResultLabel] = {
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


class _Reply(Exception):
    """DATA ends early with this SMTP reply, counted as this received result."""

    def __init__(self, result: ReceivedResultLabel, text: str) -> None:
        super().__init__(result)
        self.result: ReceivedResultLabel = result
        self.text = text


class _ScanFailed(Exception):
    """The scanner pool could not give a result (not: the message was unscannable)."""


class _PolicyFailed(Exception):
    """A rule could not decide (the store failed); logged where it happened."""


def make_server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def start_submission_server(
    services: SubmissionServices, *, host: str, port: int, implicit_tls: bool = False
) -> asyncio.Server:
    """Listen for submission on ``host:port``: STARTTLS required, or TLS from the start."""
    silence_aiosmtpd_log()
    if log.isEnabledFor(logging.DEBUG):
        timing.GC_PAUSES.install()  # the accept_timing lines' gc_ms
    settings = services.settings.submission
    tls_context = make_server_tls_context(str(settings.tls_cert), str(settings.tls_key))
    handler = SubmissionHandler(services)
    loop = asyncio.get_running_loop()
    cap = SessionCap(f"submission:{port}", settings.max_sessions)
    return await loop.create_server(
        lambda: PhigateSMTP(handler, tls_context=tls_context, loop=loop, cap=cap,
                            implicit_tls=implicit_tls),
        host=host, port=port, ssl=tls_context if implicit_tls else None,
    )
