"""Delivery-status fields the MIME parser did not hand us as a delivery-status part (a broken
boundary, a flattened report), a missing Action: field, and a Status: comment. Made-up
reports, not samples of the evaluation set."""

from __future__ import annotations

from phigate.policy.feedback.classify import classify

_FIELDS = (b"Reporting-MTA: dns; mx.relay.example.org\r\n\r\n"
           b"Final-Recipient: rfc822; pat@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           b"Diagnostic-Code: smtp; 550 5.1.1 <pat@example.net>: Recipient unknown here\r\n\r\n"
           b"Original-Recipient: rfc822;lee@example.com\r\n"
           b"Final-Recipient: rfc822;lee@example.com\r\nAction: delayed\r\n"
           b"Status: 4.0.0 (example.com: host name lookup failure)\r\n\r\n"
           b"Final-Recipient: rfc822; kim@example.net\r\nAction: failed\r\nStatus: 5.2.2\r\n"
           b"Diagnostic-Code: smtp; 552 5.2.2 Quota exceeded, try later\r\n\r\n")


def _broken_boundary_report() -> bytes:
    # the second boundary line is indented: a parser sees one text part holding the fields
    return (b"From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.org>\r\n"
            b"To: news@practice.test\r\nSubject: Returned mail: see below\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/report; "
            b"report-type=delivery-status; boundary=\"b0RDER/relay\"\r\n\r\n"
            b"--b0RDER/relay\r\nContent-Type: text/plain\r\n\r\n"
            b"Some addresses had delivery problems:\r\n"
            b"<pat@example.net> (unrecoverable error)\r\n"
            b"<kim@example.net> (unrecoverable error)\r\n\r\n"
            b" --b0RDER/relay\r\nContent-Type: message/delivery-status\r\n\r\n"
            + _FIELDS + b"--b0RDER/relay--\r\n")


def test_status_blocks_inside_a_text_part_are_read_as_the_report() -> None:
    report = classify(_broken_boundary_report(), verify_dkim=False)
    assert report.kind == "bounce"
    found = {r.address: (r.category, r.permanent, r.status, r.temporary)
             for r in report.recipients}
    assert found == {
        "pat@example.net": ("userunknown", True, "5.1.1", False),
        # the Status: comment is the reporting MTA's explanation
        "lee@example.com": ("networkerror", False, "4.0.0", True),
        "kim@example.net": ("mailboxfull", False, "5.2.2", False),
    }


def test_a_person_quoting_delivery_status_fields_is_not_a_bounce() -> None:
    raw = (b"From: Pat <pat@example.net>\r\nTo: front-desk@practice.test\r\n"
           b"Subject: question about my appointment\r\n\r\n"
           b"My mail program showed this, what does it mean?\r\n\r\n" + _FIELDS)
    assert classify(raw, verify_dkim=False).kind == "other"


def test_header_lines_naming_no_recipient_are_not_a_report() -> None:
    # a text bounce quoting the returned headers: no Final-Recipient, so the prose decides
    raw = (b"From: MAILER-DAEMON@relay.example.org\r\nTo: news@practice.test\r\n"
           b"Subject: Delivery failure\r\n\r\n"
           b"Unable to deliver message to the following address(es).\r\n\r\n"
           b"<pat@example.net>:\r\n550 5.2.2 pat's mailbox is full\r\n\r\n"
           b"Status: sent\r\nAction: none\r\nSubject: hello\r\n")
    report = classify(raw, verify_dkim=False)
    [recipient] = report.recipients
    assert (recipient.address, recipient.category) == ("pat@example.net", "mailboxfull")


def _report_without_action(status: bytes) -> bytes:
    return (b"From: MAILER-DAEMON@relay.example.org\r\nTo: news@practice.test\r\n"
            b"Subject: Delivery Status Notification\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n"
            b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
            b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; relay.example.org\r\n\r\n"
            b"Final-Recipient: rfc822; pat@example.net\r\nStatus: " + status + b"\r\n"
            b"\r\n--b--\r\n")


def test_a_missing_action_field_is_read_from_the_status_class() -> None:
    [failed] = classify(_report_without_action(b"5.1.1"), verify_dkim=False).recipients
    assert (failed.category, failed.permanent, failed.temporary) == ("userunknown", True, False)
    [delayed] = classify(_report_without_action(b"4.4.7"), verify_dkim=False).recipients
    assert delayed.temporary and not delayed.permanent
    assert classify(_report_without_action(b"2.0.0"), verify_dkim=False).kind == "other"


def test_a_delivery_status_part_sent_as_text_plain_is_read_as_the_report() -> None:
    raw = _broken_boundary_report().replace(b" --b0RDER/relay\r\nContent-Type: message/"
                                            b"delivery-status", b"--b0RDER/relay\r\n"
                                            b"Content-Type: text/plain")
    assert b"message/delivery-status" not in raw
    found = {r.address: r.category for r in classify(raw, verify_dkim=False).recipients}
    assert found == {"pat@example.net": "userunknown", "lee@example.com": "networkerror",
                     "kim@example.net": "mailboxfull"}


def test_fields_swallowed_by_a_nested_multipart_are_still_read() -> None:
    # the damaged boundary sits after a nested multipart: the parser leaves the fields in
    # that multipart's epilogue, outside every part
    raw = (b"From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.org>\r\n"
           b"To: news@practice.test\r\nSubject: Delivery Status Notification (Failure)\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/report; "
           b"report-type=delivery-status; boundary=\"outer\"\r\n\r\n"
           b"--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
           b"--inner\r\nContent-Type: text/plain\r\n\r\n** Message not delivered **\r\n"
           b"--inner\r\nContent-Type: text/html\r\n\r\n<p>Message not delivered</p>\r\n"
           b"--inner--\r\n\r\n"
           b" --outer\r\nContent-Type: message/delivery-status\r\n\r\n" + _FIELDS
           + b"--outer--\r\n")
    found = {r.address: r.category for r in classify(raw, verify_dkim=False).recipients}
    assert found == {"pat@example.net": "userunknown", "lee@example.com": "networkerror",
                     "kim@example.net": "mailboxfull"}


def test_a_delivered_notice_without_action_fields_is_not_a_bounce() -> None:
    raw = _broken_boundary_report().replace(b"Action: failed\r\nStatus: 5.1.1", b"Status: 2.0.0")
    raw = raw.replace(b"Action: delayed\r\nStatus: 4.0.0 (example.com: host name lookup failure)",
                      b"Status: 2.1.5").replace(b"Action: failed\r\nStatus: 5.2.2",
                                                b"Status: 2.0.0")
    raw = raw.replace(b"(unrecoverable error)", b"(delivered)")
    assert classify(raw, verify_dkim=False).kind == "other"
