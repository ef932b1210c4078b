"""Complaints that are not RFC 5965 to the letter: Microsoft's JMRP shape, a report part
declared text/plain, an "abuse report" notice with the message attached. A bounce with its
returned message attached stays a bounce."""

from __future__ import annotations

from phigate.policy.feedback.classify import classify

RETURNED = ("From: news@practice.test\r\nTo: pat@example.net\r\nSubject: Spring news\r\n"
            "Message-ID: <n1@practice.test>\r\n{extra}\r\nHello.\r\n")


def mixed(subject: str, text: str, extra: str = "", sender: str = "staff@reports.example"
          ) -> bytes:
    return (f"From: {sender}\r\nTo: fbl@practice.test\r\nSubject: {subject}\r\n"
            'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
            f"--B\r\nContent-Type: text/plain\r\n\r\n{text}\r\n"
            "--B\r\nContent-Type: message/rfc822\r\n\r\n" + RETURNED.format(extra=extra)
            + "--B--\r\n").encode()


def test_jmrp_names_the_complainer_in_the_returned_message() -> None:
    raw = mixed("complaint about message from 192.0.2.7", "A user marked this as junk.",
                extra="X-HmXmrOriginalRecipient: <lee@example.net>\r\n")
    report = classify(raw, verify_dkim=False)
    assert (report.kind, report.feedback_type) == ("complaint", "abuse")
    assert [r.address for r in report.recipients] == ["lee@example.net"]


def test_an_abuse_report_notice_with_the_message_attached() -> None:
    raw = mixed("Abuse report", "This is an email abuse report for an email message "
                "received from IP 192.0.2.7 on Tue, 1 Dec 2026 10:00:00 +0000")
    report = classify(raw, verify_dkim=False)
    assert report.kind == "complaint"
    assert [r.address for r in report.recipients] == ["pat@example.net"]


def test_report_fields_in_a_text_plain_part_of_a_feedback_report() -> None:
    raw = ("From: fbl@isp.example\r\nTo: fbl@practice.test\r\nSubject: FW: Spring news\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
           'report-type=feedback-report; boundary="B"\r\n\r\n'
           "--B\r\nContent-Type: text/plain\r\n\r\nThis is a complaint.\r\n"
           "--B\r\nContent-Type: text/plain\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n"
           "Original-Rcpt-To: <kim@example.net>\r\n"
           "--B\r\nContent-Type: message/rfc822\r\n\r\n" + RETURNED.format(extra="")
           + "--B--\r\n").encode()
    report = classify(raw, verify_dkim=False)
    assert (report.kind, report.feedback_type) == ("complaint", "abuse")
    assert [r.address for r in report.recipients] == ["kim@example.net"]


def test_a_bounce_with_its_message_attached_is_not_a_complaint() -> None:
    raw = mixed("Undelivered Mail Returned to Sender", "Delivery to pat@example.net failed: "
                "550 5.1.1 user unknown", sender="MAILER-DAEMON@mx.example.net")
    report = classify(raw, verify_dkim=False)
    assert report.kind == "bounce"
    assert report.recipients[0].category == "userunknown"
