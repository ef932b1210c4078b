"""``check-config --dns`` against a local DNS server with right and wrong records."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from helpers.dns_server import DnsServer

from phigate.checks.at_start import start_dns_checks
from phigate.config import load_settings
from phigate.mta.delivery.dkim import dns_record, generate_key
from phigate.observability.logs import FIELDS_ATTR

from .conftest import DOMAIN, HOST, OUR_IP, run, txt


def check(config: Path, *extra: str) -> tuple[int, list[str]]:
    result = run("--config", str(config), "check-config", "--dns", "--ip", OUR_IP, *extra)
    findings = [line for line in result.err.splitlines()
                if not line.startswith("phigate: configuration has errors")]
    return result.status, findings


def test_published_records_that_match_pass(installation: Path, dns: DnsServer) -> None:
    status, lines = check(installation)
    assert (status, lines) == (0, [])
    asked = {name for name, _ in dns.queries}
    assert {DOMAIN, HOST, f"s2026._domainkey.{DOMAIN}", f"_dmarc.{DOMAIN}",
            "10.2.0.192.in-addr.arpa"} <= asked


def test_the_host_address_comes_from_the_hostname_without_ip(
        installation: Path, dns: DnsServer) -> None:
    result = run("--config", str(installation), "check-config", "--dns")
    assert result.status == 0, result.err


def test_an_unpublished_dkim_selector_is_an_error_with_the_record_to_publish(
        installation: Path, dns: DnsServer) -> None:
    dns.set(f"s2026._domainkey.{DOMAIN}", [])
    status, lines = check(installation)
    assert status == 2
    [line] = lines
    assert line.startswith(f"phigate: error: s2026._domainkey.{DOMAIN}: the rsa DKIM selector "
                           "s2026 is not published; fix: publish")
    assert "v=DKIM1; k=rsa; p=" in line


def test_a_selector_publishing_another_key_is_an_error(
        installation: Path, dns: DnsServer) -> None:
    dns.set(f"s2026._domainkey.{DOMAIN}", [("TXT", txt(dns_record(generate_key("rsa"))))])
    status, lines = check(installation)
    assert status == 2 and "is not ours" in lines[0]


def test_spf_that_leaves_this_host_out_fails(installation: Path, dns: DnsServer) -> None:
    dns.set(DOMAIN, [("TXT", txt("v=spf1 ip4:203.0.113.0/24 include:_spf.other.test ~all"))])
    dns.set("_spf.other.test", [("TXT", txt("v=spf1 ip4:198.51.100.1 -all"))])
    status, lines = check(installation)
    assert status == 2
    assert lines == [f"phigate: error: {DOMAIN}: SPF gives softfail for this host's address "
                     f"{OUR_IP}; fix: add ip4:{OUR_IP} or a:{HOST} to the SPF record"]


def test_spf_through_include_and_ip4_range_passes(installation: Path, dns: DnsServer) -> None:
    dns.set(DOMAIN, [("TXT", txt("v=spf1 include:_spf.other.test -all"))])
    dns.set("_spf.other.test", [("TXT", txt("v=spf1 ip4:192.0.2.0/24 -all"))])
    assert check(installation) == (0, [])


def test_missing_dmarc_and_missing_spf_are_errors(installation: Path, dns: DnsServer) -> None:
    dns.set(f"_dmarc.{DOMAIN}", [])
    dns.set(DOMAIN, [("MX", f"10 {HOST}.")])
    status, lines = check(installation)
    assert status == 2
    assert [line.split(": ")[2:4] for line in lines] == [
        [DOMAIN, "no SPF record; fix"], [f"_dmarc.{DOMAIN}", "no DMARC record; fix"]]


def test_ptr_must_resolve_back_to_the_address(installation: Path, dns: DnsServer) -> None:
    dns.set("10.2.0.192.in-addr.arpa", [("PTR", "host-10.isp.test.")])
    dns.set("host-10.isp.test", [("A", "198.51.100.77")])
    status, lines = check(installation)
    assert status == 2
    assert lines == [f"phigate: error: {OUR_IP}: PTR host-10.isp.test does not resolve back to "
                     f"{OUR_IP}; fix: publish host-10.isp.test. A {OUR_IP}, or fix the PTR"]
    dns.set("10.2.0.192.in-addr.arpa", [])
    assert "has no PTR record" in check(installation)[1][0]


def test_mta_sts_and_tls_rpt_are_checked_where_published(
        installation: Path, dns: DnsServer) -> None:
    dns.set(f"_mta-sts.{DOMAIN}", [("TXT", txt("v=STSv1;"))])
    status, lines = check(installation)
    assert status == 2
    assert [line.split(": ")[1:3] for line in lines] == [
        ["error", f"_mta-sts.{DOMAIN}"], ["warning", f"_smtp._tls.{DOMAIN}"]]
    dns.set(f"_mta-sts.{DOMAIN}", [("TXT", txt("v=STSv1; id=2026120201"))])
    dns.set(f"_smtp._tls.{DOMAIN}", [("TXT", txt(f"v=TLSRPTv1; rua=mailto:tls@{DOMAIN}"))])
    assert check(installation) == (0, [])


def test_an_unanswering_resolver_is_a_warning_not_an_error(
        installation: Path, dns: DnsServer) -> None:
    dns.fail(f"_dmarc.{DOMAIN}")
    status, lines = check(installation)
    assert status == 0
    assert lines[0].startswith(f"phigate: warning: DMARC of {DOMAIN}: DNS did not answer")


def test_serve_logs_dns_findings_as_warnings(installation: Path, dns: DnsServer,
                                             caplog: pytest.LogCaptureFixture) -> None:
    dns.set(f"_dmarc.{DOMAIN}", [])
    settings = load_settings(installation)
    with caplog.at_level(logging.INFO, logger="phigate.checks"):
        thread = start_dns_checks(settings)
        thread.join(timeout=30)
    warnings = [r for r in caplog.records if r.getMessage() == "dns_check"]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    fields = vars(warnings[0])[FIELDS_ATTR]
    assert fields["subject"] == f"_dmarc.{DOMAIN}" and fields["severity"] == "error"
    assert any(r.getMessage() == "dns_check_done" for r in caplog.records)
