"""The admin service: what the CLI and the TUI may see and do, checked and audited.

Both front ends hold one :class:`AdminService` and never touch the store or SMTP code
themselves. Looking needs the viewer role, acting the operator role (``[admin]``); a refusal
is audited as ``action.denied`` and raised as :class:`AccessDenied`. Every action writes its
audit entry in the same transaction as the change.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phigate.admin import actions, review
from phigate.admin.access import Gate
from phigate.admin.actions import ActionRefused
from phigate.admin.dashboard import Dashboard, build_dashboard
from phigate.admin.details import ActionOutcome, AttemptView, MessageDetail, QuarantineItem
from phigate.admin.listing import QueueFilter, QueuePage, count_rows, list_page
from phigate.admin.policy_admin import PolicyAdministration
from phigate.admin.preview import Preview, Previewer, ScannerFactory
from phigate.admin.retention import PurgeReport, purge
from phigate.admin.roles import Identity, Role
from phigate.admin.shape import QueueShape, queue_shape
from phigate.audit.log import Actor, AuditLog
from phigate.audit.verify import ChainReport, verify_chain
from phigate.clock import utcnow
from phigate.config import Settings
from phigate.errors import PhigateError
from phigate.mta.submission.auth import Lockout, LockoutTracker, Tarpit, lockout_tracker
from phigate.queue.db import shred_checkpoint
from phigate.queue.models import Attempt, AuditEvent, Message, MessageState, Recipient
from phigate.queue.store import SqlQueueStore, UnknownMessage

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class AdminService(PolicyAdministration):
    def __init__(
        self,
        store: SqlQueueStore,
        audit: AuditLog,
        settings: Settings,
        *,
        identity: Identity | None = None,
        clock: Clock = utcnow,
        scanner_factory: ScannerFactory | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.settings = settings
        self.identity = identity or Identity.current()
        self.gate = Gate(audit, settings.admin, self.identity,
                         service_user=settings.admin.service_user)
        self.clock = clock
        self._previewer = Previewer(settings.scanner, scanner_factory)

    @property
    def role(self) -> Role:
        return self.gate.role

    @property
    def can_act(self) -> bool:
        return self.role >= Role.OPERATOR

    def require_viewer(self, what: str = "admin.view") -> None:
        self.gate.require(Role.VIEWER, what)

    def require_operator(self, action: str, message_ids: Sequence[str] = ()) -> None:
        """Check (and audit a refusal) before asking an operator to confirm an action."""
        self.gate.require(Role.OPERATOR, action, message_ids)

    # -- looking ----------------------------------------------------------------------------

    def page(self, filters: QueueFilter, *, after: int | None = None, before: int | None = None,
             limit: int = 50) -> QueuePage:
        self.gate.require(Role.VIEWER, "queue.list")
        with self.store.reading() as session:
            return list_page(session, filters, now=self.clock(), limit=limit, after=after,
                             before=before)

    def count(self, filters: QueueFilter) -> int:
        self.gate.require(Role.VIEWER, "queue.list")
        with self.store.reading() as session:
            return count_rows(session, filters, now=self.clock())

    def message(self, message_id: str) -> MessageDetail:
        self.gate.require(Role.VIEWER, "queue.show", [message_id])
        view = self.store.get_message(message_id)
        addresses = {r.id: r.address for r in view.recipients}
        with self.store.reading() as session:
            rows = session.scalars(
                select(Attempt).where(Attempt.message_id == message_id).order_by(Attempt.id)
            ).all()
            attempts = [
                AttemptView(addresses.get(a.recipient_id, "?"), a.started_at, a.host, a.code,
                            a.text, a.permanent, a.tls_version, a.tls_cipher, a.cert_verified,
                            a.tls_policy)
                for a in rows
            ]
            pickup = [
                {"at": e.at.isoformat(timespec="seconds"), "action": e.action,
                 "ip": e.actor_ip, "detail": e.detail}
                for e in session.scalars(
                    select(AuditEvent).where(AuditEvent.message_id == message_id,
                                             AuditEvent.action.startswith("pickup_"))
                    .order_by(AuditEvent.id))
            ]
        return MessageDetail(view, attempts, pickup)

    def shape(self, *, deferred_only: bool = False, top: int = 20) -> QueueShape:
        self.gate.require(Role.VIEWER, "queue.shape")
        with self.store.reading() as session:
            return queue_shape(session, now=self.clock(), deferred_only=deferred_only, top=top)

    def dashboard(self) -> Dashboard:
        self.gate.require(Role.VIEWER, "dashboard.view")
        with self.store.reading() as session:
            figures = build_dashboard(session, self.clock())
        lockouts, _ = self._lockouts().current()
        return dataclasses.replace(figures, lockouts=lockouts)

    def lockouts(self) -> tuple[list[Lockout], list[Tarpit]]:
        """The (user, client IP) pairs refused now and the user names slowed now, as every
        serve process and node keeps them (in the database)."""
        self.gate.require(Role.VIEWER, "user.lockouts")
        return self._lockouts().current()

    def unlock_user(self, name: str, ip: str | None = None) -> int:
        """Clear a user's lockouts (from ``ip``, or everywhere); audited. Returns how many
        lockouts were in force."""
        self.gate.require(Role.OPERATOR, "user.unlock")
        return unlock_audited(self._lockouts(), self.audit, self.identity.actor, name, ip)

    def _lockouts(self) -> LockoutTracker:
        return lockout_tracker(self.settings, self.store.engine)

    def quarantine(self, *, limit: int = 500) -> list[QuarantineItem]:
        self.gate.require(Role.VIEWER, "quarantine.list")
        recipients = (select(func.count()).where(Recipient.message_id == Message.id)
                      .correlate(Message).scalar_subquery())
        with self.store.reading() as session:
            rows = session.execute(
                select(Message, recipients).where(Message.state == MessageState.QUARANTINED)
                .order_by(Message.created_at).limit(limit)
            ).all()
            return [QuarantineItem(m.id, m.created_at, m.sender, m.message_class,
                                   m.phi_verdict, list(m.phi_categories), m.hold_reason,
                                   int(n)) for m, n in rows]

    def preview(self, message_id: str) -> Preview:
        """The body with every finding replaced by ``[CATEGORY]`` (viewers may see it)."""
        self.gate.require(Role.VIEWER, "message.preview", [message_id])
        return self._previewer.redacted(message_id, self._body(message_id))

    def audit_entries(self, *, since: datetime | None = None, actor: str | None = None,
                      action: str | None = None, message_id: str | None = None,
                      limit: int = 1000) -> list[dict[str, Any]]:
        self.gate.require(Role.VIEWER, "audit.list")
        return self.audit.entries(since=since, actor=actor, action=action,
                                  message_id=message_id, limit=limit)

    def verify_audit(self) -> ChainReport:
        self.gate.require(Role.VIEWER, "audit.verify")
        checkpoint = (self.audit.checkpoints.newest()
                      if self.audit.checkpoints is not None else None)
        with self.store.reading() as session:
            return verify_chain(session, key=self.audit.key, checkpoint=checkpoint)

    # -- acting -----------------------------------------------------------------------------

    def reveal(self, message_id: str, *, reason: str | None = None) -> Preview:
        """The clear text: operators only, after an explicit confirmation; always audited."""
        self.gate.require(Role.OPERATOR, "message.reveal", [message_id])
        raw = self._body(message_id)
        self.audit.record(self.identity.actor, "message.reveal", message_id=message_id,
                          detail={"reason": reason} if reason else {})
        return self._previewer.clear(message_id, raw)

    def retry(self, message_ids: Sequence[str]) -> list[ActionOutcome]:
        return self._act("queue.retry", message_ids,
                         lambda s, m, now: actions.retry(s, m, now),
                         lambda d: f"{d['recipients']} recipient(s) due now")

    def hold(self, message_ids: Sequence[str], *, reason: str | None = None
             ) -> list[ActionOutcome]:
        return self._act("queue.hold", message_ids,
                         lambda s, m, now: actions.hold(s, m, reason), lambda d: "held")

    def release(self, message_ids: Sequence[str], *, reason: str | None = None
                ) -> list[ActionOutcome]:
        return self._act("queue.release", message_ids,
                         lambda s, m, now: actions.release(s, m, reason, now),
                         lambda d: f"released from {d['from_state']}")

    def delete(self, message_ids: Sequence[str]) -> list[ActionOutcome]:
        outcomes = self._act("queue.delete", message_ids,
                             lambda s, m, now: actions.cancel(s, m, now),
                             lambda d: f"deleted ({d['cancelled']} recipient(s) cancelled, "
                                       "body destroyed)")
        if any(outcome.ok for outcome in outcomes):
            shred_checkpoint(self.store.engine)
        return outcomes

    def bounce(self, message_ids: Sequence[str], *, reason: str | None = None,
               action: str = "queue.bounce") -> list[ActionOutcome]:
        """Fail the pending recipients permanently and tell the sender with a DSN."""

        def do(session: Session, message: Message, now: datetime) -> dict[str, Any]:
            failed = actions.bounce(session, message, now)
            detail: dict[str, Any] = {"recipients": len(failed)}
            if reason:
                detail["reason"] = reason
            # Popped by _act_one before auditing: addresses are for the DSN, not the log.
            return detail | {"_failed": failed}

        return self._act(action, message_ids, do,
                         lambda d: f"bounced {d['recipients']} recipient(s)")

    def reject_quarantined(self, message_ids: Sequence[str], *, reason: str
                           ) -> list[ActionOutcome]:
        if not reason.strip():
            raise ActionRefused("rejecting a quarantined message needs a reason")
        return self.bounce(message_ids, reason=reason.strip(), action="quarantine.reject")

    def purge(self, *, dry_run: bool = False) -> PurgeReport:
        self.gate.require(Role.OPERATOR, "retention.purge", allow_service_user=True)
        return purge(self.store.engine, self.audit, self.settings.retention,
                     self.identity.actor, now=self.clock(), dry_run=dry_run)

    # -- campaigns, suppressions, consent ----------------------------------------------------
    # -- helpers ----------------------------------------------------------------------------

    def _body(self, message_id: str) -> bytes:
        try:
            return self.store.read_body(message_id)
        except PhigateError:
            raise
        except Exception as error:  # e.g. DecryptionError for a purged body
            raise ActionRefused(f"message {message_id}: body not readable "
                                f"({type(error).__name__})") from None

    def _act(
        self,
        action: str,
        message_ids: Sequence[str],
        change: Callable[[Session, Message, datetime], dict[str, Any]],
        describe: Callable[[dict[str, Any]], str],
    ) -> list[ActionOutcome]:
        self.gate.require(Role.OPERATOR, action, message_ids)
        outcomes = []
        for message_id in message_ids:
            try:
                outcomes.append(self._act_one(action, message_id, change, describe))
            except (ActionRefused, UnknownMessage) as error:
                outcomes.append(ActionOutcome(message_id, False, str(error)))
        return outcomes

    def _act_one(
        self,
        action: str,
        message_id: str,
        change: Callable[[Session, Message, datetime], dict[str, Any]],
        describe: Callable[[dict[str, Any]], str],
    ) -> ActionOutcome:
        now = self.clock()
        original: bytes | None = None
        if action in ("queue.bounce", "quarantine.reject") or review.needs_original(action):
            original = self._readable_body(message_id)
        with self.store.writing() as session:
            message = session.get(Message, message_id, with_for_update=True)
            if message is None:
                raise UnknownMessage(f"no message {message_id}")
            detail = change(session, message, now)
            failed: list[str] = detail.pop("_failed", [])
            sender, created_at, phi = message.sender, message.created_at, message.phi
            self.audit.record(self.identity.actor, action, message_id=message_id,
                              detail=detail, session=session)
        if failed:
            self._send_dsn(message_id, sender, created_at, original, failed, now, phi=phi)
        review.notify_after_review(self.store, self.settings, message_id, action, detail,
                                   original, now=now)
        return ActionOutcome(message_id, True, describe(detail))

    def _readable_body(self, message_id: str) -> bytes | None:
        try:
            return self.store.read_body(message_id)
        except Exception:  # purged or unknown: the DSN then carries no original headers
            return None

    def _send_dsn(self, message_id: str, sender: str, arrival: datetime,
                  original: bytes | None, failed: list[str], now: datetime, *,
                  phi: bool) -> None:
        from phigate.mta.delivery.dsn import FailedRecipient, build_dsn
        from phigate.mta.delivery.reports import queue_report

        if not sender:
            return
        reporting_mta = self.settings.server.hostname
        report = build_dsn(
            original=original or b"\r\n",
            envelope_sender=sender,
            failed=[FailedRecipient(address, "5.0.0", None,
                                    f"smtp; {actions.BOUNCE_CODE} {actions.BOUNCE_TEXT}",
                                    last_attempt=now) for address in failed],
            reporting_mta=reporting_mta,
            arrival=arrival,
            queue_id=message_id,
            phi=phi,
            from_domain=self.settings.server.domain,
        )
        if report is None:
            return
        try:  # a DSN about PHI mail needs the TLS its original needed (issue 13 finding 3)
            queue_report(self.store, recipients=[sender], body=report, phi=phi, now=now)
        except Exception as error:  # the bounce stands; only the notice is lost
            log.warning("bounce: DSN not queued message=%s error=%s", message_id,
                        type(error).__name__)


def unlock_audited(lockouts: LockoutTracker, audit: AuditLog, actor: Actor, name: str,
                   ip: str | None = None) -> int:
    """Clear ``name``'s lockouts (from ``ip``, or everywhere) and record who did it: the one
    unlock of ``phigate user unlock`` and the TUI. Returns how many were in force."""
    cleared = lockouts.unlock(name, ip)
    audit.record(actor, "user.unlock", detail={"user": name, "client_ip": ip or "*",
                                               "lockouts_cleared": cleared})
    return cleared


def open_service(settings: Settings, *, identity: Identity | None = None
                 ) -> tuple[AdminService, Callable[[], None]]:
    """A service over a freshly opened runtime, and the function that closes it."""
    from phigate.runtime import Runtime

    runtime = Runtime.open(settings)
    service = AdminService(runtime.store, runtime.audit, settings, identity=identity)
    return service, runtime.close
