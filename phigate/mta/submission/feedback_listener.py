"""The feedback listener: a second SMTP server that takes bounces, complaints and mailto
unsubscribes for phigate's own addresses, and nothing else.

It is never a relay: ``RCPT`` is accepted only for the bounce domain's VERP addresses
(``bounces+TOKEN@``) and unsubscribe addresses (``unsubscribe+TOKEN@``) whose token
verifies, and for its complaint mailboxes (``[feedback] complaint_mailboxes``, e.g. the
address registered with mailbox providers' feedback loops). There is no AUTH (nobody
submits mail here); STARTTLS is offered when the relay's certificate exists, since
bounces quote the mail they return.

Each message is classified (:func:`phigate.policy.feedback.classify.classify`) and applied
(:class:`phigate.policy.feedback.actions.FeedbackProcessor`) off the event loop before the
``250``; if that fails the reply is ``451`` and the sender tries again later.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from phigate.clock import utcnow
from phigate.config import Settings
from phigate.mta.delivery.decorate import bounce_domain
from phigate.mta.delivery.review_notices import Review, notify_campaign_review
from phigate.mta.submission.server import make_server_tls_context
from phigate.mta.submission.sessions import (
    OpenSession,
    SessionCap,
    refuse_full,
    say_shutting_down,
)
from phigate.observability.logs import log_event
from phigate.observability.metrics import METRICS
from phigate.policy.feedback.actions import FeedbackProcessor
from phigate.policy.tokens import TokenSigner, token_in_address
from phigate.queue.store import SqlQueueStore

log = logging.getLogger("phigate.feedback")

REPLY_NOT_OURS = "550 5.7.1 relay not permitted"
REPLY_UNKNOWN_MAILBOX = "550 5.1.1 No such mailbox (address token not valid)"
REPLY_TEMPFAIL = "451 4.3.0 Temporary local problem processing feedback, try again later"
REPLY_TOO_MANY_RCPTS = "452 4.5.3 Too many recipients for one report"
REPLY_TOO_MANY_SESSIONS = "421 4.7.0 Too many connections from your address, try again later"


class FeedbackHandler:
    def __init__(self, settings: Settings, processor: FeedbackProcessor,
                 signer: TokenSigner | None, store: SqlQueueStore | None = None,
                 open_sessions: set[OpenSession] | None = None) -> None:
        self.settings = settings
        self.processor = processor
        self.signer = signer
        #: Where the "held" notices go when a complaint pauses a campaign (None: none).
        self.store = store
        self.domain = bounce_domain(settings).lower()
        self.mailboxes = {m.lower() for m in settings.feedback.complaint_mailboxes}
        #: Open sessions per client IP (the listener's per-IP session limit).
        self.sessions_per_ip: dict[str, int] = {}
        #: Open sessions in all (the listener's global cap).
        self.cap = SessionCap("feedback", settings.feedback.max_sessions)
        #: Sessions in progress, told 421 if still open when serve's grace period ends.
        self.open_sessions: set[OpenSession] = set() if open_sessions is None else open_sessions

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [line for line in responses if not line[4:].startswith("AUTH")]

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if any(known.lower() == address.lower() for known in envelope.rcpt_tos):
            return "250 2.1.5 OK (duplicate recipient)"  # one report is read once per address
        if len(envelope.rcpt_tos) >= self.settings.feedback.max_recipients:
            return REPLY_TOO_MANY_RCPTS
        reply = self.check_recipient(address)
        if reply is not None:
            log_event(log, "feedback_rcpt_refused", ip=_peer_ip(session.peer),
                      reply=reply[:9])
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    def check_recipient(self, address: str) -> str | None:
        """None if ``address`` is one of ours, else the refusal."""
        local, at, domain = address.strip().strip("<>").rpartition("@")
        if not at or domain.lower().rstrip(".") != self.domain:
            return REPLY_NOT_OURS
        if local.lower() in self.mailboxes:
            return None
        found = token_in_address(address)
        if found is None:
            return REPLY_NOT_OURS
        kind, token = found
        if self.signer is None or self.signer.parse(token, kind=kind) is None:
            return REPLY_UNKNOWN_MAILBOX
        return None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        ip = _peer_ip(session.peer)
        for recipient in envelope.rcpt_tos:
            try:
                outcome = await asyncio.to_thread(self.processor.handle, content, recipient)
            except Exception as error:  # keep the report: the sender will retry
                log_event(log, "feedback_failed", level=logging.ERROR, ip=ip,
                          error=type(error).__name__)
                return REPLY_TEMPFAIL
            log_event(log, "feedback", ip=ip, kind=outcome.kind, rcpts=outcome.recipients,
                      suppressed=outcome.suppressed, campaign=outcome.campaign_id,
                      campaign_paused=outcome.campaign_paused, trust=outcome.trust,
                      ignored=outcome.ignored)
            if outcome.held and self.store is not None:
                # The pause is committed; its notices never fail the report (they log).
                await asyncio.to_thread(notify_campaign_review, self.store, self.settings,
                                        outcome.held, Review.HELD, now=utcnow())
        return "250 2.0.0 Feedback received"


class FeedbackSMTP(SMTP):
    """aiosmtpd without AUTH, counting its sessions, a few at a time per client IP."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:  # not the STARTTLS upgrade
            METRICS.smtp_sessions.labels(listener="feedback").inc()
            self._counted = True
            ip = _peer_ip(transport.get_extra_info("peername"))
            counts: dict[str, int] = self.event_handler.sessions_per_ip
            if ip is not None:
                counts[ip] = counts.get(ip, 0) + 1
                self._session_ip = ip
                if counts[ip] > self.event_handler.settings.feedback.max_sessions_per_ip:
                    refuse_full(transport, REPLY_TOO_MANY_SESSIONS.encode() + b"\r\n")
                    self._refused = True
            if not getattr(self, "_refused", False):
                self._capped = self.event_handler.cap.try_open()
                if not self._capped:
                    refuse_full(transport)
                    self._refused = True
            if not getattr(self, "_refused", False):
                self.event_handler.open_sessions.add(self)
        super().connection_made(transport)

    async def _handle_client(self) -> None:
        if getattr(self, "_refused", False):
            return
        await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        if getattr(self, "_counted", False):
            METRICS.smtp_sessions.labels(listener="feedback").dec()
            self._counted = False
            self.event_handler.open_sessions.discard(self)
            if getattr(self, "_capped", False):
                self.event_handler.cap.close()
                self._capped = False
            ip = getattr(self, "_session_ip", None)
            counts: dict[str, int] = self.event_handler.sessions_per_ip
            if ip is not None and counts.get(ip, 0) > 0:
                counts[ip] -= 1
                if not counts[ip]:
                    del counts[ip]
        super().connection_lost(error)

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push("502 5.5.1 Authentication not available here")

    def say_shutting_down(self) -> None:
        """The grace period is over: 421 4.3.2 and close (see serve_stop), so that the
        sending MTA retries its report later instead of seeing the connection drop."""
        say_shutting_down(self.transport)


def _peer_ip(peer: Any) -> str | None:
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def feedback_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The relay's certificate, when it exists (STARTTLS offered, never required)."""
    cert, key = settings.submission.tls_cert, settings.submission.tls_key
    if not (cert.is_file() and key.is_file()):
        return None
    return make_server_tls_context(str(cert), str(key))


async def start_feedback_server(
    settings: Settings, processor: FeedbackProcessor, signer: TokenSigner | None, *,
    host: str, port: int, store: SqlQueueStore | None = None,
    open_sessions: set[OpenSession] | None = None,
) -> asyncio.Server:
    handler = FeedbackHandler(settings, processor, signer, store, open_sessions)
    tls_context = feedback_tls_context(settings)
    loop = asyncio.get_running_loop()
    limits = settings.submission
    return await loop.create_server(
        lambda: FeedbackSMTP(
            handler, data_size_limit=settings.feedback.max_message_size, enable_SMTPUTF8=True,
            decode_data=False, hostname=settings.server.hostname, ident="phigate feedback",
            tls_context=tls_context, require_starttls=False, auth_required=False,
            auth_require_tls=True, timeout=limits.timeout_seconds,
            command_call_limit=limits.max_commands, loop=loop,
        ),
        host=host, port=port,
    )
