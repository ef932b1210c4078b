"""``phigate tls check DOMAIN --json`` against a locally signed zone behind a real Unbound."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import trustme
from helpers.net import free_port
from helpers.smtp_sink import SmtpSink
from helpers.transport import StsHost, policy_text, self_signed
from helpers.unbound import ValidatingResolver, require_unbound

DOMAIN = "example.test"


def _config(tmp_path: Path, resolver: str, mx_port: int, sts_port: int, ca: Path) -> Path:
    path = tmp_path / "phigate.toml"
    path.write_text(f"""
[server]
domain = "practice.test"
hostname = "relay.practice.test"
[delivery]
dns_servers = ["{resolver}"]
dnssec_resolver = "{resolver}"
mx_port = {mx_port}
mta_sts_port = {sts_port}
ca_file = "{ca}"
connect_timeout_seconds = 5.0
""")
    return path


async def _phigate(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "phigate", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def test_tls_check_reports_mx_sts_tlsa_and_probe(tmp_path: Path) -> None:
    require_unbound()
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    mx1 = self_signed("mx1.example.test", str(tmp_path))  # DANE-EE: self-signed is fine
    zone = {DOMAIN: [("MX", "10 mx1.example.test."), ("MX", "20 mx2.example.test.")],
            "mx1.example.test": [("A", "127.0.0.1")],
            "mx2.example.test": [("A", "127.0.0.1")],
            "_25._tcp.mx1.example.test": [("TLSA", mx1.tlsa())],
            f"_mta-sts.{DOMAIN}": [("TXT", '"v=STSv1; id=20261202"')],
            f"mta-sts.{DOMAIN}": [("A", "127.0.0.1")]}
    sink = SmtpSink(free_port(), tls_context=mx1.context).start()
    sts_port = free_port()
    try:
        with ValidatingResolver(tmp_path, signed={DOMAIN: zone}) as resolver:
            async with StsHost(ca, DOMAIN, sts_port) as host:
                host.policy = policy_text("enforce", "mx1.example.test")
                config = _config(tmp_path, resolver.address, sink.port, sts_port, ca_file)
                status, output = await _phigate("--config", str(config), "tls", "check",
                                                DOMAIN, "--json")
                text_status, text = await _phigate("--config", str(config), "tls", "check",
                                                   DOMAIN)
    finally:
        sink.stop()
    assert status == 0, output
    report = json.loads(output)
    assert report["mx"] == ["mx1.example.test", "mx2.example.test"]
    assert report["mta_sts"]["mode"] == "enforce" and report["mta_sts"]["id"] == "20261202"
    assert report["dnssec_resolver"] is True
    first, second = report["hosts"]
    assert first["policy"] == "dane" and first["tlsa_state"] == "secure"
    assert first["tlsa"] == [mx1.tlsa().lower()]
    assert first["starttls"] is True and first["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert first["cert_verified"] is False  # self-signed: no WebPKI
    assert first["dane_match"] is True
    assert second["policy"] == "mta-sts" and second["tlsa_state"] == "none"
    assert "not an MX host of the destination's MTA-STS policy" in second["refusal"]
    assert text_status == 0
    assert "MTA-STS: mode enforce, id 20261202" in text
    assert "matches TLSA: yes" in text and "never used:" in text
