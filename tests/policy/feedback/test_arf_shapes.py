"""Complaint reports in shapes other generators use: the report fields in a text/plain part
of a message that does not say report-type=feedback-report. Made-up reports."""

from __future__ import annotations

from phigate.policy.feedback.classify import classify


def _report(fields: bytes) -> bytes:
    return (b"From: fbl@isp.example\r\nTo: abuse@practice.test\r\nSubject: Abuse report\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"r\"\r\n\r\n"
            b"--r\r\nContent-Type: text/plain\r\n\r\nA report about a message you sent.\r\n"
            b"--r\r\nContent-Type: text/plain\r\n\r\n" + fields + b"\r\n"
            b"--r\r\nContent-Type: message/rfc822\r\n\r\nFrom: news@practice.test\r\n"
            b"To: pat@example.net\r\nSubject: Newsletter\r\n\r\nHello\r\n--r--\r\n")


def test_report_fields_in_text_plain_without_report_type_are_read() -> None:
    abuse = classify(_report(b"Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n"
                             b"Original-Rcpt-To: <pat@example.net>\r\n"), verify_dkim=False)
    assert (abuse.kind, abuse.feedback_type) == ("complaint", "abuse")
    assert [r.address for r in abuse.recipients] == ["pat@example.net"]
    # a DKIM failure report is no complaint: nobody asked to stop receiving mail
    auth = classify(_report(b"Feedback-Type: auth-failure\r\nUser-Agent: DKIMFilter/1.0\r\n"
                            b"Version: 1\r\nAuth-Failure: bodyhash\r\n"), verify_dkim=False)
    assert (auth.kind, auth.feedback_type) == ("other", "auth-failure")


def test_a_feedback_type_line_alone_without_report_type_is_not_a_report() -> None:
    quoted = classify(_report(b"Someone wrote:\r\nFeedback-Type: abuse\r\n"), verify_dkim=False)
    assert quoted.feedback_type != "abuse"
