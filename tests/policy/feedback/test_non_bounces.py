"""Messages that name an address and sound like trouble but are not bounces: auto-replies
written in other languages, plain-text notices of a delivery that succeeded. Made-up text."""

from __future__ import annotations

import pytest

from phigate.policy.feedback.classify import classify

_BODY = (b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
         b"Thank you. Your message could not be delivered to me personally until Monday;\r\n"
         b"my mailbox is full of work. pat@example.net\r\n")


@pytest.mark.parametrize("subject", [
    b"Abwesenheitsnotiz: Ihr Termin",
    "Réponse automatique : votre rendez-vous".encode(),  # raw 8-bit UTF-8
    b"=?utf-8?q?Respuesta_autom=C3=A1tica=3A_su_cita?=",  # RFC 2047
    b"=?iso-8859-1?q?Resposta_autom=E1tica=3A_consulta?=",
    b"Risposta automatica: appuntamento", b"Automatisch antwoord: afspraak",
    b"Autosvar: tid", "自動応答: ご予約".encode(),
])
def test_an_auto_reply_in_another_language_is_not_a_bounce(subject: bytes) -> None:
    raw = (b"From: Pat Lee <pat@example.net>\r\nTo: front-desk@practice.test\r\n"
           b"Subject: " + subject + b"\r\nMIME-Version: 1.0\r\n" + _BODY)
    assert classify(raw, verify_dkim=False).kind == "other"


def test_a_bounce_with_a_foreign_subject_is_still_a_bounce() -> None:
    raw = (b"From: MAILER-DAEMON@mx.example.de (Mail Delivery System)\r\n"
           b"To: news@practice.test\r\nSubject: Unzustellbar: Termin\r\n\r\n"
           b"Ihre Nachricht konnte nicht zugestellt werden.\r\n\r\n<pat@example.de>: host "
           b"mx.example.de[192.0.2.9] sagte: 550 5.1.1 Benutzer unbekannt\r\n")
    [recipient] = classify(raw, verify_dkim=False).recipients
    assert recipient.category == "userunknown" and recipient.permanent


def _notice(subject: bytes, text: bytes) -> bytes:
    return (b"From: MAILER-DAEMON@mx.example.net\r\nTo: news@practice.test\r\n"
            b"Subject: " + subject + b"\r\n\r\n" + text)


@pytest.mark.parametrize("raw", [
    _notice(b"Successful Mail Delivery Report", b"Your message was successfully delivered to "
            b"the destination(s) listed below.\r\n\r\n<pat@example.net>: delivery via "
            b"mx.example.net[192.0.2.3]:25: 250 2.0.0 Ok: queued as 1A2B\r\n"),
    _notice(b"Delivery Status Notification (Relay)", b"Your message has been successfully "
            b"relayed to the following recipients, but no further notification may be "
            b"sent by the destination.\r\n\r\n     pat@example.net\r\n"),
])
def test_a_plain_text_success_notice_is_not_a_bounce(raw: bytes) -> None:
    assert classify(raw, verify_dkim=False).kind == "other"


def test_a_notice_with_one_success_and_one_failure_is_a_bounce_for_the_failure() -> None:
    raw = _notice(b"Delivery Status Notification", b"Your message was successfully delivered "
                  b"to lee@example.com.\r\n\r\nDelivery to the following recipient failed "
                  b"permanently:\r\n\r\n<pat@example.net>: 550 5.1.1 no such user here\r\n")
    report = classify(raw, verify_dkim=False)
    assert report.kind == "bounce"
    assert "pat@example.net" in {r.address for r in report.recipients}


def test_a_delay_notice_is_still_reported_as_a_temporary_failure() -> None:
    raw = _notice(b"Warning: message delayed", b"Your message has not been delivered yet; "
                  b"the server will keep trying for 5 days.\r\n\r\n<pat@example.net>: "
                  b"connect to mx.example.net[192.0.2.3]:25: Connection timed out\r\n")
    [recipient] = classify(raw, verify_dkim=False).recipients
    assert not recipient.permanent


def test_a_persons_mail_naming_an_address_between_commas_is_not_a_bounce() -> None:
    # one of flufl.bounce's detectors reads any ", a@b," as a failed address
    raw = (b"From: Pat Lee <pat@example.net>\r\nTo: bounces@practice.test\r\n"
           b"Subject: Re: your appointment\r\n\r\n"
           b"Please send it to my wife, kim@example.com, thanks.\r\n")
    assert classify(raw, verify_dkim=False).kind == "other"


def test_a_bounce_from_an_mdaemon_sender_is_still_a_bounce() -> None:
    raw = (b"From: MDaemon@mail.example.net\r\nTo: bounces@practice.test\r\n"
           b"Subject: Warning: pat@example.net - User unknown!\r\n\r\n"
           b"The message could not be delivered, pat@example.net, user unknown.\r\n")
    report = classify(raw, verify_dkim=False)
    assert report.kind == "bounce"
    assert [r.address for r in report.recipients] == ["pat@example.net"]


def test_a_detector_result_that_is_no_address_is_not_reported() -> None:
    raw = (b"From: MAILER-DAEMON@relay.example.org\r\nTo: bounces@practice.test\r\n"
           b"Subject: Delivery failure\r\n\r\nDelivery failed, the relay logged:\r\n"
           b'{"id":7, "rcpt":"pat@example.net", "code":550, "text":"no such user"}\r\n')
    report = classify(raw, verify_dkim=False)
    assert [r.address for r in report.recipients] == ["pat@example.net"]
