"""RFC 3464 DSNs: parse back with the stdlib, never carry the body, never bounce a bounce."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from typing import cast

import pytest

from phigate.mta.delivery.dsn import FailedRecipient, build_dsn

BODY_MARKER = b"Diagnosis: stage 2 carcinoma, see attached labs"
ORIGINAL = (
    b"From: Dr Who <dr@clinic.example>\r\n"
    b"To: Pat <pat@example.net>, Sam <sam@example.org>\r\n"
    b"Subject: Your results\r\n"
    b"Message-ID: <orig-1@clinic.example>\r\n"
    b"X-Phigate-Class: treatment\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n" + BODY_MARKER + b"\r\n"
)
FAILED = [
    FailedRecipient("pat@example.net", "5.1.1", "mx.example.net",
                    "smtp; 550 5.1.1 <pat@example.net>: user unknown",
                    last_attempt=datetime(2025, 3, 4, 10, 0, tzinfo=UTC)),
    FailedRecipient("sam@example.org", "4.7.5", "mx.example.org",
                    "TLS required for PHI: mx.example.org offers no STARTTLS"),
]


def build(original: bytes = ORIGINAL, sender: str = "dr@clinic.example",
          failed: list[FailedRecipient] = FAILED) -> bytes | None:
    return build_dsn(original=original, envelope_sender=sender, failed=failed,
                     reporting_mta="relay.clinic.example",
                     arrival=datetime(2025, 3, 1, 9, 0), envelope_id="Q123")


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_dsn_parses_back_with_the_stdlib() -> None:
    raw = build()
    assert raw is not None
    dsn = parse(raw)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["From"].addresses[0].addr_spec == "MAILER-DAEMON@relay.clinic.example"
    assert dsn["To"].addresses[0].addr_spec == "dr@clinic.example"
    assert dsn["Auto-Submitted"] == "auto-replied"
    assert "Your results" not in str(dsn["Subject"])
    text, status, headers = dsn.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    assert headers.get_content_type() == "text/rfc822-headers"

    per_message, first, second = cast(list[Message], status.get_payload())
    assert per_message["Reporting-MTA"] == "dns; relay.clinic.example"
    assert per_message["Original-Envelope-Id"] == "Q123"
    assert "01 Mar 2025 09:00:00 +0000" in per_message["Arrival-Date"]
    assert first["Final-Recipient"] == "rfc822; pat@example.net"
    assert (first["Action"], first["Status"]) == ("failed", "5.1.1")
    assert first["Remote-MTA"] == "dns; mx.example.net"
    assert first["Diagnostic-Code"] == "smtp; 550 5.1.1 <pat@example.net>: user unknown"
    assert first["Last-Attempt-Date"] is not None
    assert second["Diagnostic-Code"].startswith("X-Phigate; TLS required for PHI")

    explanation = text.get_content()
    assert "mailbox does not exist" in explanation
    assert "encrypted" in explanation and "not sent unencrypted" in explanation
    returned = headers.get_content()
    assert "Message-ID: <orig-1@clinic.example>" in returned
    assert "X-Phigate" not in returned


def test_original_body_never_appears() -> None:
    raw = build()
    assert raw is not None
    assert BODY_MARKER not in raw
    assert b"carcinoma" not in raw
    for part in parse(raw).walk():
        if not part.is_multipart() and part.get_content_type() != "message/delivery-status":
            assert "carcinoma" not in part.get_content()


@pytest.mark.parametrize("sender", ["", "<>", "  "])
def test_no_dsn_for_the_null_sender(sender: str) -> None:
    assert build(sender=sender) is None


def test_never_bounce_a_bounce_or_an_auto_reply() -> None:
    our_dsn = build()
    assert our_dsn is not None
    assert build(original=our_dsn) is None
    auto_reply = b"From: p@example.net\r\nAuto-Submitted: auto-replied\r\n\r\nOn vacation\r\n"
    assert build(original=auto_reply) is None
    explicit_no = b"From: p@example.net\r\nAuto-Submitted: no\r\n\r\nHello\r\n"
    assert build(original=explicit_no) is not None


def test_delay_notice_and_8bit_headers() -> None:
    original = "From: dr@clinic.example\r\nSubject: Grüße\r\n\r\nbody\r\n".encode()
    raw = build(original=original, failed=[
        FailedRecipient("pat@example.net", "4.4.1", None, "connection timed out",
                        action="delayed")])
    assert raw is not None
    dsn = parse(raw)
    assert "Delayed" in str(dsn["Subject"])
    assert "Grüße" in list(dsn.iter_parts())[2].get_content()
    assert cast(list[Message], list(dsn.iter_parts())[1].get_payload())[1]["Action"] == "delayed"


def test_no_recipients_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        build(failed=[])
