"""TLS reporting (RFC 8460): counters, the JSON report against the RFC's schema, the mail."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from helpers.dns_server import DnsServer
from helpers.net import free_port

from phigate.mta.delivery.routing import make_resolver
from phigate.mta.delivery.tlsrpt import (
    PolicyType,
    ReportContext,
    ResultType,
    TlsReporter,
    TlsRptCounter,
    parse_rua,
)
from phigate.queue.crypto import MasterKey
from phigate.queue.db import make_engine, upgrade
from phigate.queue.models import Message, Recipient
from phigate.queue.store import SqlQueueStore
from phigate.queue.transport_store import TransportStore

SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "tlsrpt-schema.json").read_text())
CONTEXT = ReportContext("Practice Relay", "mailto:postmaster@practice.test",
                        "relay.practice.test")
DAY = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


@pytest.fixture
def stores(tmp_path: Path, master_key_file: Path) -> Iterator[tuple[SqlQueueStore,
                                                                     TransportStore]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    upgrade(engine)
    yield SqlQueueStore(engine, MasterKey.load(master_key_file)), TransportStore(engine)
    engine.dispose()


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    server = DnsServer(free_port(socket.SOCK_DGRAM), {
        "_smtp._tls.example.test": [("TXT", '"v=TLSRPTv1; rua=mailto:tlsrpt@example.test,'
                                             'https://reports.example.test/v1"')],
    }).start()
    yield server
    server.stop()


def test_rua_parsing() -> None:
    assert parse_rua(["v=TLSRPTv1; rua=mailto:a@b.test, https://r.test/x"]) == [
        "mailto:a@b.test", "https://r.test/x"]
    assert parse_rua(["v=TLSRPTv1;rua=mailto:a@b.test", "v=TLSRPTv1;rua=mailto:c@d"]) == []
    assert parse_rua(["v=spf1 -all"]) == []


def _count_a_day(counter: TlsRptCounter) -> None:
    for _ in range(3):
        counter.count(DAY, "example.test", PolicyType.STS, policy_id="20261202",
                      mx="MX1.example.test")
    counter.count(DAY, "example.test", PolicyType.STS, policy_id="20261202",
                  result=ResultType.CERTIFICATE_HOST_MISMATCH, mx="mx2.example.test")
    counter.count(DAY, "example.test", PolicyType.TLSA,
                  result=ResultType.VALIDATION_FAILURE, mx="mx3.example.test")
    counter.count(DAY, "nopolicy.test", PolicyType.NONE, mx="mx.nopolicy.test")


async def test_daily_report_is_schema_valid_and_queued_once(
        stores: tuple[SqlQueueStore, TransportStore], dns: DnsServer) -> None:
    queue, transport = stores
    counter = TlsRptCounter()
    _count_a_day(counter)
    lines = {("sts", "20261202"): ["version: STSv1", "mode: enforce",
                                   "mx: mx1.example.test", "max_age: 86400"]}
    resolver = make_resolver([dns.address], timeout=3)
    reporter = TlsReporter(counter, transport, queue, resolver, CONTEXT,
                           sender="tlsrpt-noreply@practice.test", policy_lines=lines)
    # The same day: counted, not yet reported.
    assert await reporter.run_once(DAY + timedelta(hours=1)) == 0
    assert counter.pending() == {}  # flushed to the store
    # The next day: one report for example.test (nopolicy.test publishes no rua).
    assert await reporter.run_once(DAY + timedelta(days=1)) == 1
    assert await reporter.run_once(DAY + timedelta(days=1, hours=1)) == 0  # once a day

    with queue.writing() as session:
        messages = session.query(Message).all()
        recipients = [r.address for r in session.query(Recipient).all()]
    assert len(messages) == 1 and messages[0].sender == ""
    assert recipients == ["tlsrpt@example.test"]  # the mailto rua only
    parsed = email.message_from_bytes(queue.read_body(messages[0].id),
                                      policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "tlsrpt"
    assert parsed["TLS-Report-Domain"] == "example.test"
    attachment = next(p for p in parsed.iter_attachments()
                      if p.get_content_type() == "application/tlsrpt+gzip")
    assert (attachment.get_filename() or "").startswith("relay.practice.test!example.test!")
    report = json.loads(gzip.decompress(attachment.get_content()))
    jsonschema.validate(report, SCHEMA)

    assert report["date-range"] == {"start-datetime": "2026-12-01T00:00:00Z",
                                    "end-datetime": "2026-12-01T23:59:59Z"}
    by_type = {p["policy"]["policy-type"]: p for p in report["policies"]}
    sts = by_type["sts"]
    assert sts["summary"] == {"total-successful-session-count": 3,
                              "total-failure-session-count": 1}
    assert sts["policy"]["policy-string"][1] == "mode: enforce"
    assert sts["policy"]["mx-host"] == ["mx1.example.test"]
    assert sts["failure-details"] == [{"result-type": "certificate-host-mismatch",
                                       "failed-session-count": 1,
                                       "receiving-mx-hostname": "mx2.example.test"}]
    assert by_type["tlsa"]["summary"]["total-failure-session-count"] == 1
    assert "@" not in json.dumps(report["policies"])  # no addresses in the report


def test_schema_rejects_what_the_rfc_does_not_allow() -> None:
    bad = {"organization-name": "x", "date-range": {"start-datetime": "yesterday",
                                                    "end-datetime": "today"},
           "contact-info": "x", "report-id": "x", "policies": []}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


def test_flush_failure_keeps_counts(stores: tuple[SqlQueueStore, TransportStore]) -> None:
    _, transport = stores
    counter = TlsRptCounter()
    _count_a_day(counter)

    class Broken:
        def add_session_counts(self, day: str, counts: object) -> None:
            raise OSError("database gone")

    with pytest.raises(OSError):
        counter.flush(Broken())  # type: ignore[arg-type]
    assert sum(sum(c.values()) for c in counter.pending().values()) == 6
    assert counter.flush(transport) == 6
    assert counter.pending() == {}
