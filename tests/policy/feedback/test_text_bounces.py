"""Plain-text bounces: the remote's reply is kept even when it asks you to contact someone."""

from __future__ import annotations

from phigate.policy.feedback.classify import classify


def test_a_reply_that_says_contact_is_still_the_reply() -> None:
    raw = (b"From: Mail Delivery System <MAILER-DAEMON@relay.example.org>\r\n"
           b"To: news@practice.test\r\nSubject: Undeliverable mail\r\n\r\n"
           b"Each of the following recipients was rejected by a remote mail server.\r\n\r\n"
           b"    Recipient: <pat@example.net>\r\n"
           b"    <<< 550 Messages from 192.0.2.7 are blocked using a DNSBL. Please contact "
           b"<help@example.org> or your provider.\r\n")
    report = classify(raw, verify_dkim=False)
    assert report.kind == "bounce"
    [recipient] = report.recipients
    assert recipient.address == "pat@example.net"  # not the contact address
    assert recipient.category == "blocked" and not recipient.permanent
