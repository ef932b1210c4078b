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


def test_a_contact_address_in_another_language_is_not_a_failed_recipient() -> None:
    # "if that does not help, please contact <help@...>", the sentence wrapped after the
    # address as CJK text wraps anywhere; then German "wenden Sie sich an"
    raw = ("From: MAILER-DAEMON@relay.example.jp (Mail Delivery System)\r\n"
           "To: news@practice.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n"
           "解決できない場合は、<help@relay.example.jp>\r\nへご連絡ください。\r\n"
           "Bei Fragen wenden Sie sich an <hilfe@relay.example.jp>.\r\n\r\n"
           "<pat@example.net>: host mx.example.net[192.0.2.4] said: 552 5.2.2 Mailbox full "
           "(in reply to RCPT TO command)\r\n").encode()
    report = classify(raw, verify_dkim=False)
    assert [(r.address, r.category) for r in report.recipients] == [
        ("pat@example.net", "mailboxfull")]
