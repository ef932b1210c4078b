"""``serve`` runs the DNS checks once at start, in a thread, and only logs what it finds.

A DNS record is fixed in a zone the relay does not control and may simply not have
propagated yet, so a finding never stops the relay; it says what to publish instead.
"""

from __future__ import annotations

import logging
import threading

from phigate.checks.dns_checks import dns_findings
from phigate.checks.lookup import Dns
from phigate.config import Settings
from phigate.observability.logs import log_event

log = logging.getLogger("phigate.checks")


def run_dns_checks(settings: Settings) -> int:
    """Log each DNS finding as a warning; return how many there were."""
    try:
        dns = Dns(settings.delivery.dns_servers, timeout=settings.policy.dns_timeout_seconds)
        findings = dns_findings(settings, dns)
    except Exception as failure:  # a check must never take serve down
        log_event(log, "dns_check_failed", level=logging.WARNING, error=type(failure).__name__)
        return 0
    for finding in findings:
        log_event(log, "dns_check", level=logging.WARNING, severity=str(finding.severity),
                  subject=finding.subject, problem=finding.problem, fix=finding.fix)
    log_event(log, "dns_check_done", findings=len(findings))
    return len(findings)


def start_dns_checks(settings: Settings) -> threading.Thread:
    thread = threading.Thread(target=run_dns_checks, args=(settings,), name="dns-check",
                              daemon=True)
    thread.start()
    return thread
