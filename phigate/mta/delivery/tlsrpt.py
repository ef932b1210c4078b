"""SMTP TLS reporting (RFC 8460): count sessions per policy domain and day, mail the report.

- Delivery calls :meth:`TlsRptCounter.count` once per connection attempt to a destination
  (a success, or a failure with an RFC 8460 result type). Counts are kept in memory and
  added to the store (``tls_report_counts``) by :meth:`TlsRptCounter.flush`, which the
  reporter calls every minute and at shutdown: one write per minute, not per delivery.
- Once a day (:meth:`TlsReporter.run_once`), for every policy domain with counts of an
  earlier day, the ``_smtp._tls.<domain>`` TXT record (``v=TLSRPTv1; rua=mailto:...``)
  names where the report goes. The JSON report is gzipped and attached to a
  ``multipart/report; report-type=tlsrpt`` message from our domain, enqueued in our own
  queue: it is delivered (and DKIM-signed) like any other mail. An ``https:`` rua is not
  used. At most one report per domain and day (``tls_reports_sent``), across nodes.
- A report names policy domains and MX host names only; never a recipient address.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from enum import StrEnum
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.resolver

from phigate.mta.delivery.reports import queue_report
from phigate.observability.logs import log_event
from phigate.queue.store import QueueStore
from phigate.queue.transport_store import SessionCount, SessionKey, TransportStore

log = logging.getLogger(__name__)


class PolicyType(StrEnum):
    STS = "sts"
    TLSA = "tlsa"
    NONE = "no-policy-found"


class ResultType(StrEnum):
    """RFC 8460 4.3."""

    STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
    CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
    CERTIFICATE_EXPIRED = "certificate-expired"
    CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
    VALIDATION_FAILURE = "validation-failure"
    TLSA_INVALID = "tlsa-invalid"
    DNSSEC_INVALID = "dnssec-invalid"
    DANE_REQUIRED = "dane-required"
    STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
    STS_POLICY_INVALID = "sts-policy-invalid"
    STS_WEBPKI_INVALID = "sts-webpki-invalid"


def day_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


class TlsRptCounter:
    """Session counts in memory until :meth:`flush` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[SessionKey]] = {}

    def count(self, moment: datetime, domain: str, policy_type: PolicyType, *,
              policy_id: str = "", result: ResultType | None = None, mx: str = "") -> None:
        key = SessionKey(domain.lower(), str(policy_type), policy_id,
                         str(result) if result is not None else "", mx.lower())
        with self._lock:
            self._counts.setdefault(day_of(moment), Counter())[key] += 1

    def pending(self) -> dict[str, dict[SessionKey, int]]:
        with self._lock:
            return {day: dict(counts) for day, counts in self._counts.items()}

    def flush(self, store: TransportStore) -> int:
        """Write the counts to the store; on failure they are kept for the next flush."""
        with self._lock:
            taken, self._counts = self._counts, {}
        written = 0
        try:
            for day, counts in taken.items():
                store.add_session_counts(day, counts)
                written += sum(counts.values())
                taken[day] = Counter()
        except BaseException:
            with self._lock:  # put back what was not written
                for day, counts in taken.items():
                    self._counts.setdefault(day, Counter()).update(counts)
            raise
        return written


def parse_rua(records: list[str]) -> list[str]:
    """The ``rua`` URIs of a ``v=TLSRPTv1`` record (RFC 8460 3); [] when none or several."""
    candidates = [r for r in records if r.replace(" ", "").startswith("v=TLSRPTv1")]
    if len(candidates) != 1:
        return []
    for part in candidates[0].split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip() == "rua":
            return [uri.strip() for uri in value.split(",") if uri.strip()]
    return []


@dataclass(frozen=True)
class ReportContext:
    organization: str
    contact: str
    submitter: str  # our host name


def build_report(context: ReportContext, domain: str, day: str,
                 counts: list[SessionCount],
                 policy_lines: dict[tuple[str, str], list[str]] | None = None) -> dict[str, Any]:
    """The RFC 8460 4.4 JSON report of ``domain`` for ``day`` (YYYY-MM-DD, UTC)."""
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    policies: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in counts:
        key = entry.key
        policy = policies.setdefault((key.policy_type, key.policy_id), {
            "policy": _policy_block(key, domain, (policy_lines or {})),
            "summary": {"total-successful-session-count": 0,
                        "total-failure-session-count": 0},
            "failure-details": []})
        if not key.result_type:
            policy["summary"]["total-successful-session-count"] += entry.count
            continue
        policy["summary"]["total-failure-session-count"] += entry.count
        detail: dict[str, Any] = {"result-type": key.result_type,
                                  "failed-session-count": entry.count}
        if key.receiving_mx:
            detail["receiving-mx-hostname"] = key.receiving_mx
        policy["failure-details"].append(detail)
    for policy in policies.values():
        if not policy["failure-details"]:
            del policy["failure-details"]
    return {
        "organization-name": context.organization,
        "date-range": {"start-datetime": _iso(start),
                       "end-datetime": _iso(start + timedelta(days=1) - timedelta(seconds=1))},
        "contact-info": context.contact,
        "report-id": f"{day}_{domain}@{context.submitter}",
        "policies": list(policies.values()),
    }


def _policy_block(key: SessionKey, domain: str,
                  policy_lines: dict[tuple[str, str], list[str]]) -> dict[str, Any]:
    block: dict[str, Any] = {"policy-type": key.policy_type, "policy-domain": domain}
    lines = policy_lines.get((key.policy_type, key.policy_id))
    if lines:
        block["policy-string"] = lines
        block["mx-host"] = [line[4:] for line in lines if line.startswith("mx: ")]
    return block


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def report_message(report: dict[str, Any], *, domain: str, day: str, sender: str,
                   to: str, context: ReportContext) -> bytes:
    """The report as mail (RFC 8460 5.3): multipart/report with the gzipped JSON."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = (f"Report Domain: {domain} Submitter: {context.submitter} "
                          f"Report-ID: <{report['report-id']}>")
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid("tlsrpt", domain=context.submitter)
    message["TLS-Report-Domain"] = domain
    message["TLS-Report-Submitter"] = context.submitter
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(f"This is an aggregate TLS report from {context.submitter} "
                        f"for {domain}, {day}.\n")
    start = report["date-range"]["start-datetime"]
    end = report["date-range"]["end-datetime"]
    filename = f"{context.submitter}!{domain}!{_stamp(start)}!{_stamp(end)}.json.gz"
    payload = gzip.compress(json.dumps(report, indent=1).encode(), mtime=0)
    message.add_attachment(payload, maintype="application", subtype="tlsrpt+gzip",
                           filename=filename)
    message.replace_header("Content-Type", 'multipart/report; report-type="tlsrpt"; '
                           f'boundary="{message.get_boundary()}"')
    return message.as_bytes()


def _stamp(iso: str) -> str:
    return str(int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
                   .replace(tzinfo=UTC).timestamp()))


async def lookup_rua(resolver: dns.asyncresolver.Resolver, domain: str) -> list[str]:
    try:
        answer = await resolver.resolve(f"_smtp._tls.{domain}", "TXT")
    except dns.exception.DNSException:
        return []
    return parse_rua([b"".join(r.strings).decode("utf-8", "replace") for r in answer])


class TlsReporter:
    """Flushes counters and mails each finished day's reports (see the module doc)."""

    def __init__(self, counter: TlsRptCounter, store: TransportStore, queue: QueueStore,
                 resolver: dns.asyncresolver.Resolver, context: ReportContext, *,
                 sender: str, policy_lines: dict[tuple[str, str], list[str]] | None = None
                 ) -> None:
        self.counter = counter
        self._store = store
        self._queue = queue
        self._resolver = resolver
        self._context = context
        self._sender = sender
        #: (policy type, id) -> policy text lines, learned from deliveries.
        self.policy_lines = policy_lines if policy_lines is not None else {}

    async def run_once(self, now: datetime) -> int:
        """Flush, then queue the reports of days before today; returns reports queued."""
        await asyncio.to_thread(self.counter.flush, self._store)
        queued = 0
        for domain, day in await asyncio.to_thread(self._store.unreported_days, day_of(now)):
            rua = [uri[7:] for uri in await lookup_rua(self._resolver, domain)
                   if uri.startswith("mailto:")]
            if not rua or not await asyncio.to_thread(self._store.claim_report, domain, day,
                                                      now):
                continue
            counts = await asyncio.to_thread(self._store.session_counts, domain, day)
            report = build_report(self._context, domain, day, counts, self.policy_lines)
            body = report_message(report, domain=domain, day=day, sender=self._sender,
                                  to=", ".join(rua), context=self._context)
            await asyncio.to_thread(queue_report, self._queue, recipients=rua, body=body,
                                    phi=False, now=now)
            queued += 1
        if queued:
            log_event(log, "tlsrpt_reports_queued", reports=queued)
        return queued

    async def run(self, stop: asyncio.Event, *, interval: float = 60.0) -> None:
        while not stop.is_set():
            try:
                await self.run_once(datetime.now(UTC))
            except Exception as error:  # reports are best effort; delivery goes on
                log_event(log, "tlsrpt_failed", level=logging.WARNING,
                          error=type(error).__name__)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass
        await asyncio.to_thread(self.counter.flush, self._store)
