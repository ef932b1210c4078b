"""Delay notices and the shorter wait of PHI without an acceptable TLS route (pure rules).

- A recipient still not delivered ``[delivery] delay_warning_seconds`` after its message
  arrived gets one "delayed" DSN (RFC 3464 ``Action: delayed``) to the sender: once per
  recipient (``recipients.delay_notified_at``), headers only like every DSN of ours.
- A PHI message whose attempts fail because no host offers an acceptable TLS route (the
  TLS policy refused it, or its certificate did not verify) is given up on after
  ``[delivery] phi_tls_max_wait_seconds`` instead of the whole ``max_lifetime_seconds``;
  the bounce says in plain words why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from phigate.config import DeliverySettings
from phigate.mta.delivery.dsn import FailedRecipient, build_dsn
from phigate.mta.delivery.outcomes import RecipientOutcome
from phigate.mta.delivery.reports import queue_report
from phigate.queue.store import QueueStore


@dataclass(frozen=True)
class About:
    """The message a notice is about: a notice about PHI mail is minimal and needs the
    TLS the message needed (issue 13 item 2, see :mod:`phigate.mta.delivery.dsn`)."""

    queue_id: str | None = None
    phi: bool = False
    from_domain: str | None = None


def is_tls_failure(outcome: RecipientOutcome) -> bool:
    """Our own refusal to send without the TLS the message needs (never a remote reply)."""
    if outcome.delivered or outcome.remote:
        return False
    status = outcome.status
    return status in ("4.7.5", "5.7.30") or (status == "4.7.0" and "TLS" in outcome.text)


def phi_tls_expired(settings: DeliverySettings, *, phi: bool, outcome: RecipientOutcome,
                    created_at: datetime, now: datetime) -> bool:
    """The PHI message has waited long enough for a TLS route: bounce it now."""
    if not phi or not is_tls_failure(outcome) or settings.phi_tls_max_wait_seconds <= 0:
        return False
    return (now - created_at).total_seconds() >= settings.phi_tls_max_wait_seconds


def phi_tls_outcome(outcome: RecipientOutcome, domain: str, wait_seconds: int
                    ) -> RecipientOutcome:
    """The final outcome of a PHI recipient given up on for want of TLS (plain words)."""
    hours = wait_seconds / 3600
    span = f"{hours:g} hours" if hours != 1 else "1 hour"
    text = (f"5.7.10 TLS required for PHI: no mail server of {domain} offered an acceptable "
            f"encrypted, verified connection within {span}; the message was not sent "
            f"unencrypted (last reason: {outcome.text})")
    return RecipientOutcome(outcome.address, 554, text, permanent=True, remote=False)


def delay_due(settings: DeliverySettings, *, notified: bool, created_at: datetime,
              now: datetime) -> bool:
    warning = settings.delay_warning_seconds
    if notified or warning <= 0 or warning >= settings.max_lifetime_seconds:
        return False
    return (now - created_at).total_seconds() >= warning


def delay_notice(*, original: bytes, sender: str,
                 delayed: Sequence[tuple[str, RecipientOutcome]], reporting_mta: str,
                 remote_mta: str | None, arrival: datetime, now: datetime,
                 about: About | None = None) -> bytes | None:
    """The "delayed" DSN for ``delayed`` (address, last outcome), or None (no sender, or
    the message is itself a report)."""
    return build_dsn(
        original=original, envelope_sender=sender,
        failed=[FailedRecipient(
            address=address, status=outcome.status, action="delayed",
            remote_mta=remote_mta if outcome.remote else None,
            diagnostic=(f"smtp; {outcome.code} {outcome.text}" if outcome.remote
                        else outcome.text),
            last_attempt=now) for address, outcome in delayed],
        reporting_mta=reporting_mta, arrival=arrival, queue_id=about.queue_id if about else None,
        phi=about.phi if about else False, from_domain=about.from_domain if about else None)


def queue_delay_notice(store: QueueStore, *, original: bytes, sender: str,
                       delayed: Sequence[tuple[int, str, RecipientOutcome]],
                       reporting_mta: str, host: str | None, arrival: datetime,
                       now: datetime, about: About | None = None) -> None:
    """Queue the "delayed" DSN for ``delayed`` (recipient id, address, last outcome) and
    remember that they were notified, so each recipient gets one notice at most."""
    remote_mta = host.partition("[")[0] if host else None
    notice = delay_notice(original=original, sender=sender,
                          delayed=[(address, outcome) for _, address, outcome in delayed],
                          reporting_mta=reporting_mta, remote_mta=remote_mta,
                          arrival=arrival, now=now, about=about)
    if notice is not None:
        queue_report(store, recipients=[sender], body=notice,
                     phi=about is not None and about.phi, now=now)
    store.mark_delay_notified([recipient_id for recipient_id, _, _ in delayed], now=now)
