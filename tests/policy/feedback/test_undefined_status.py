"""A DSN whose only address evidence is the remote's "no such user" under Status: 5.0.0: the
reporting MTA's own words decide whether the address is called bad. Made-up reports."""

from __future__ import annotations

from phigate.policy.feedback.classify import classify


def _dsn(human: bytes, diagnostic: bytes, status: bytes = b"5.0.0") -> bytes:
    return (b"From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.org>\r\n"
            b"To: news@practice.test\r\nSubject: Delivery Status Notification (Failure)\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/report; "
            b"report-type=delivery-status; boundary=\"xyz\"\r\n\r\n"
            b"--xyz\r\nContent-Type: text/plain\r\n\r\n" + human + b"\r\n"
            b"--xyz\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; relay.example.org\r\n\r\n"
            b"Final-Recipient: rfc822; pat@example.net\r\nAction: failed\r\n"
            b"Status: " + status + b"\r\nDiagnostic-Code: smtp; " + diagnostic + b"\r\n"
            b"\r\n--xyz--\r\n")


def test_no_such_user_under_5_0_0_is_gray_when_the_reporter_gives_no_verdict() -> None:
    raw = _dsn(b"Delivery to pat@example.net failed: the remote server said\r\n"
               b"550 pat@example.net... no such user here", b"550 pat@example.net... no such "
               b"user here")
    [recipient] = classify(raw, verify_dkim=False).recipients
    assert recipient.category == "filtered" and not recipient.permanent
    assert (recipient.status, recipient.reply_code) == ("5.0.0", "550")


def test_the_reporters_own_address_not_found_verdict_is_a_bad_address() -> None:
    raw = _dsn(b"Your message to pat@example.net was not delivered: the address could not "
               b"be found.\r\n\r\n550 pat@example.net... no such user here",
               b"550 pat@example.net... no such user here")
    [recipient] = classify(raw, verify_dkim=False).recipients
    assert recipient.category == "userunknown" and recipient.permanent


def test_an_address_status_keeps_no_such_user_a_bad_address() -> None:
    raw = _dsn(b"Delivery to pat@example.net failed.", b"550 5.1.1 no such user here",
               status=b"5.1.1")
    [recipient] = classify(raw, verify_dkim=False).recipients
    assert recipient.category == "userunknown" and recipient.permanent


def _local_dsn(diagnostic: bytes) -> bytes:
    return (b"From: MAILER-DAEMON@relay.example.org\r\nTo: news@practice.test\r\n"
            b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"q\"\r\n"
            b"\r\n--q\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; relay.example.org\r\n\r\n"
            b"Final-Recipient: rfc822; pat@example.net\r\nAction: failed\r\nStatus: 4.3.0\r\n"
            b"Diagnostic-Code: " + diagnostic + b"\r\n\r\n--q--\r\n")


def test_a_local_delivery_program_failing_is_a_mailer_error() -> None:
    # diagnostic type x-unix: a pipe or maildir writer answered, not a remote server
    [failed] = classify(_local_dsn(b"x-unix; internal problem, try later"),
                        verify_dkim=False).recipients
    assert failed.category == "mailererror" and not failed.permanent
    # its words still come first when they tell the reason
    [full] = classify(_local_dsn(b"x-unix; /home/pat/Maildir/tmp/1.x: Disk quota exceeded"),
                      verify_dkim=False).recipients
    assert full.category == "mailboxfull"
    # the same words from a remote server are not a mailer error
    [remote] = classify(_local_dsn(b"smtp; 451 internal problem, try later"),
                        verify_dkim=False).recipients
    assert remote.category != "mailererror"
