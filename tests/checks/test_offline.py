"""``check-config`` without the network: certificate, trusted networks, public_url, PHI TLS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from phigate.cli.selfsigned import generate_self_signed

from .conftest import edit_config, run


def test_a_fresh_installation_passes_without_findings(installation: Path) -> None:
    result = run("--config", str(installation), "check-config")
    assert result.status == 0, result.err
    assert "configuration OK" in result.out and "error" not in result.err
    assert "DANE off: no DNSSEC-validating resolver" in result.out


def test_check_config_says_dane_is_on_with_a_validating_resolver(installation: Path) -> None:
    edit_config(installation, "[delivery]", '[delivery]\ndnssec_resolver = "127.0.0.1:5353"')
    result = run("--config", str(installation), "check-config")
    assert result.status == 0, result.err
    assert "DANE on: TLSA records validated by 127.0.0.1:5353" in result.out


def test_a_certificate_for_another_key_is_an_error_with_its_fix(installation: Path) -> None:
    cert = installation.parent / "tls" / "cert.pem"
    other_cert, _ = generate_self_signed("mail.practice.test")
    cert.write_bytes(other_cert)
    result = run("--config", str(installation), "check-config")
    assert result.status == 2
    [line] = [line for line in result.err.splitlines() if "tls_cert" in line]
    assert line.startswith("phigate: error: [submission] tls_cert: the certificate does not "
                           "match the key") and "; fix: " in line
    assert "configuration OK" not in result.out


def _expired_certificate(key_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.practice.test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - timedelta(days=400)).not_valid_after(now - timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_an_expired_certificate_is_an_error(installation: Path) -> None:
    tls = installation.parent / "tls"
    (tls / "cert.pem").write_bytes(_expired_certificate((tls / "key.pem").read_bytes()))
    result = run("--config", str(installation), "check-config")
    assert result.status == 2
    assert "the certificate expired on" in result.err and "fix: renew" in result.err


def test_public_trusted_networks_http_url_and_weak_phi_tls_each_get_one_line(
        installation: Path) -> None:
    edit_config(installation, "trusted_networks = []",
                'trusted_networks = ["0.0.0.0/0", "10.0.0.0/8", "93.184.216.0/24"]')
    edit_config(installation, 'public_url = "https://', 'public_url = "http://')
    edit_config(installation, 'tls_phi = "verify"', 'tls_phi = "opportunistic"')
    result = run("--config", str(installation), "check-config")
    assert result.status == 2
    errors = [line for line in result.err.splitlines() if line.startswith("phigate: error:")]
    subjects = [line.split(": ")[2] for line in errors]
    assert subjects == ["[submission] trusted_networks[0]", "[submission] trusted_networks[2]",
                        "[http] public_url", "[delivery] tls_phi"]
    assert all("; fix: " in line for line in errors)


def test_warnings_alone_exit_0(installation: Path) -> None:
    edit_config(installation, 'public_url = "https://mail.practice.test"',
                'public_url = "http://127.0.0.1:8025"')
    result = run("--config", str(installation), "check-config")
    assert result.status == 0
    assert result.err.startswith("phigate: warning: [http] public_url:")
    assert "configuration OK" in result.out and "1 warning(s)" in result.out
