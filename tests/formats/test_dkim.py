"""DKIM signing: verified by dkimpy and by Perl's Mail::DKIM; RFC 8463 reproduced."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import dkim
import pytest
from helpers.shared import EVAL as SHARED_EVAL

from phigate.config import DkimSettings
from phigate.errors import ConfigError
from phigate.mta.delivery.dkim import (
    DkimSigner,
    dns_record,
    generate_key,
    headers_to_sign,
    strip_internal_headers,
)

EVAL = SHARED_EVAL / "dkim"
DKIMPY_DATA = EVAL / "dkimpy/dkim/tests/data"
VERIFY_PL = Path(__file__).with_name("verify_dkim.pl")

MESSAGE = (
    b"From: Clinic <reminders@clinic.example>\r\n"
    b"To: Patient <pat@example.net>\r\n"
    b"Subject: Your appointment\r\n"
    b"Date: Mon, 03 Mar 2025 10:00:00 +0000\r\n"
    b"Message-ID: <abc@clinic.example>\r\n"
    b"X-Phigate-Class: marketing\r\n"
    b"X-Phigate-Campaign: spring\r\n"
    b"  continued\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"List-Unsubscribe: <https://u.clinic.example/u/abc>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"Received: by relay\r\n"
    b"\r\n"
    b"See you on Monday.\r\n"
)


@pytest.fixture(scope="module")
def rsa_key() -> bytes:
    return generate_key("rsa")


@pytest.fixture(scope="module")
def ed_key() -> bytes:
    return generate_key("ed25519")


def dns_for(records: dict[str, str]) -> Callable[..., bytes | None]:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        # dkimpy asks with bytes and a trailing dot (FACTS.md)
        value = records.get(name.decode().rstrip(".").lower())
        return value.encode() if value is not None else None

    return lookup


def verify_all(message: bytes, records: dict[str, str]) -> list[bool]:
    verifier = dkim.DKIM(message)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    results = []
    for index in range(count):
        try:
            results.append(verifier.verify(idx=index, dnsfunc=dns_for(records)))
        except dkim.ValidationError:
            results.append(False)
    return results


def test_generated_keys_have_the_promised_formats(rsa_key: bytes, ed_key: bytes) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    assert rsa_key.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert load_pem_private_key(rsa_key, None).key_size == 2048  # type: ignore[union-attr]
    import base64

    assert len(base64.b64decode(ed_key)) == 32
    assert dns_record(rsa_key).startswith("v=DKIM1; k=rsa; p=MIIBIjAN")
    assert re.fullmatch(r"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=", dns_record(ed_key, "ed25519"))


def test_dual_signature_verifies_with_dkimpy(rsa_key: bytes, ed_key: bytes) -> None:
    signer = DkimSigner(domains=["clinic.example"], selector="s1", rsa_key=rsa_key,
                        ed25519_selector="s2", ed25519_key=ed_key)
    signed = signer.sign(MESSAGE)
    records = {"s1._domainkey.clinic.example": dns_record(rsa_key),
               "s2._domainkey.clinic.example": dns_record(ed_key, "ed25519")}
    assert verify_all(signed, records) == [True, True]
    assert re.findall(rb"a=([\w-]+);", signed) == [b"rsa-sha256", b"ed25519-sha256"]
    # a changed body breaks both
    assert verify_all(signed.replace(b"Monday", b"Friday"), records) == [False, False]


def test_signature_covers_the_promised_headers_and_strips_internal_ones(rsa_key: bytes) -> None:
    signer = DkimSigner(domains=["clinic.example"], selector="s1", rsa_key=rsa_key)
    signed = signer.sign(MESSAGE)
    assert b"X-Phigate" not in signed and b"continued" not in signed
    assert signed.endswith(strip_internal_headers(MESSAGE))
    h_tag = dkim.util.parse_tag_value(signed.split(b"\r\nFrom:")[0][len(b"DKIM-Signature:"):])[b"h"]
    signed_names = [name.strip().decode() for name in h_tag.split(b":")]
    for name in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type",
                 "list-unsubscribe", "list-unsubscribe-post"):
        assert name in signed_names
    assert "received" not in signed_names and not any("phigate" in n for n in signed_names)
    assert signed_names.count("from") == 2  # oversigned: a second From: cannot be added


def test_foreign_from_domain_is_not_signed_but_still_stripped(rsa_key: bytes) -> None:
    signer = DkimSigner(domains=["other.example"], selector="s1", rsa_key=rsa_key)
    out = signer.sign(MESSAGE)
    assert out == strip_internal_headers(MESSAGE)
    assert not out.startswith(b"DKIM-Signature")


def test_lf_only_messages_stay_lf_only_and_verify(rsa_key: bytes) -> None:
    signer = DkimSigner(domains=["clinic.example"], selector="s1", rsa_key=rsa_key)
    signed = signer.sign(MESSAGE.replace(b"\r\n", b"\n"))
    assert b"\r" not in signed
    assert verify_all(signed, {"s1._domainkey.clinic.example": dns_record(rsa_key)}) == [True]


@pytest.mark.skipif(shutil.which("perl") is None, reason="perl not installed")
def test_mail_dkim_verifies_our_rsa_signature_independently(rsa_key: bytes) -> None:
    if subprocess.run(["perl", "-MMail::DKIM::Verifier", "-e1"], check=False).returncode:
        pytest.skip("libmail-dkim-perl not installed")
    signer = DkimSigner(domains=["clinic.example"], selector="s1", rsa_key=rsa_key)
    signed = signer.sign(MESSAGE)
    record = f"s1._domainkey.clinic.example={dns_record(rsa_key)}"

    def perl_verify(message: bytes) -> str:
        return subprocess.run(["perl", str(VERIFY_PL), record], input=message,
                              capture_output=True, check=True).stdout.decode()

    assert perl_verify(signed) == "pass clinic.example s1\n"
    assert perl_verify(signed.replace(b"Your appointment", b"Your appointmenT")).startswith("fail")


def rfc8463_signatures() -> dict[str, bytes]:
    """The b= values of the RFC 8463 Appendix A example (stalwart's copy, 001.txt)."""
    text = (EVAL / "stalwart-mail-auth/resources/dkim/001.txt").read_bytes()
    signed = text.split(b"\n\n", 1)[1]
    found = {}
    for header in re.findall(rb"DKIM-Signature:.*?(?=\n\S)", signed, re.DOTALL):
        tags = dkim.util.parse_tag_value(header[len(b"DKIM-Signature:"):])
        found[tags[b"a"].decode()] = re.sub(rb"\s+", b"", tags[b"b"])
    return found


@pytest.mark.skipif(not (EVAL / "stalwart-mail-auth").is_dir() or not DKIMPY_DATA.is_dir(),
                    reason=f"evaluation material absent: {EVAL} (set PHIGATE_SHARED_DIR)")
def test_rfc8463_example_is_reproduced() -> None:
    expected = rfc8463_signatures()
    signer = DkimSigner(
        domains=["football.example.com"],
        selector="test", rsa_key=(DKIMPY_DATA / "test.private").read_bytes(),
        ed25519_selector="brisbane", ed25519_key=(DKIMPY_DATA / "rfc8032_7_1.key").read_bytes(),
    )
    message = (DKIMPY_DATA / "rfc6376.msg").read_bytes()
    assert headers_to_sign(message) == ["from", "to", "subject", "date", "message-id",
                                        "from", "subject", "date"]
    with mock.patch("time.time", return_value=1528637909):  # the RFC's t=
        signed = signer.sign(message)
    produced = {}
    for header in re.findall(rb"DKIM-Signature:.*?(?=\n\S)", signed, re.DOTALL):
        tags = dkim.util.parse_tag_value(header[len(b"DKIM-Signature:"):])
        produced[tags[b"a"].decode()] = re.sub(rb"\s+", b"", tags[b"b"])
    assert produced["ed25519-sha256"] == expected["ed25519-sha256"]
    assert produced["rsa-sha256"] == expected["rsa-sha256"]  # PKCS#1 v1.5 is deterministic too


def test_from_settings(tmp_path: Path, rsa_key: bytes, ed_key: bytes) -> None:
    assert DkimSigner.from_settings(DkimSettings(), "clinic.example") is None
    (tmp_path / "rsa.pem").write_bytes(rsa_key)
    (tmp_path / "ed.key").write_bytes(ed_key)
    signer = DkimSigner.from_settings(
        DkimSettings(selector="s1", key_file=str(tmp_path / "rsa.pem"), ed25519_selector="s2",
                     ed25519_key_file=str(tmp_path / "ed.key")),
        "clinic.example",
    )
    assert signer is not None and signer.domains == {"clinic.example"}
    assert signer.sign(MESSAGE).count(b"DKIM-Signature:") == 2
    (tmp_path / "bad.pem").write_bytes(b"not a key")
    with pytest.raises(ConfigError, match=r"\[dkim\] key_file"):
        DkimSigner.from_settings(DkimSettings(selector="s", key_file=str(tmp_path / "bad.pem")),
                                 "clinic.example")
    with pytest.raises(ConfigError, match="cannot read"):
        DkimSigner.from_settings(DkimSettings(selector="s", key_file=str(tmp_path / "none")),
                                 "clinic.example")
