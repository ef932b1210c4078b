"""Mailbox and address wording in other languages (accents dropped before matching),
paraphrased: each reads as the reason its meaning gives, also where the stage alone would
say otherwise."""

from __future__ import annotations

import pytest

from phigate.policy.feedback.reasons import BounceReason, SmtpStage, judge

R = BounceReason


@pytest.mark.parametrize(("text", "reason"), [
    ("550 Das Postfach des Empfängers ist voll", R.MAILBOXFULL),
    ("550 Speicherplatz des Postfachs überschritten", R.MAILBOXFULL),
    ("550 La boîte aux lettres du destinataire est pleine", R.MAILBOXFULL),
    ("550 El buzón del destinatario está lleno", R.MAILBOXFULL),
    ("550 La casella di posta è piena", R.MAILBOXFULL),
    ("550 A caixa postal do destinatário está cheia", R.MAILBOXFULL),
    ("550 Das Konto des Empfängers wurde gesperrt", R.SUSPEND),
    ("550 Le compte est suspendu", R.SUSPEND),
])
def test_a_mailbox_problem_in_another_language_at_rcpt_is_not_a_bad_address(
        text: str, reason: BounceReason) -> None:
    # at RCPT a 5xx naming no reason would be read as an unknown user: the words must win
    verdict = judge(reply_code="550", stage=SmtpStage.RCPT, text=text)
    assert verdict.reason is reason and not verdict.hard


@pytest.mark.parametrize("text", [
    "550 Empfänger unbekannt", "550 Der Benutzer existiert nicht",
    "550 Destinataire inconnu", "550 L'adresse n'existe pas",
    "550 Usuario desconocido", "550 Utente sconosciuto", "550 Usuário desconhecido",
    "550 Gebruiker onbekend",
])
def test_an_unknown_user_in_another_language_is_a_bad_address(text: str) -> None:
    verdict = judge(status="5.1.1", text=text)
    assert verdict.reason is R.USERUNKNOWN and verdict.hard
    # and, like the English words, not under an undefined status at no stage
    assert not judge(status="5.0.0", text=text, summary="").hard


def test_a_text_in_another_script_is_read_without_error() -> None:
    verdict = judge(status="5.2.2", text="552 5.2.2 メールボックスがいっぱいです")
    assert verdict.reason is R.MAILBOXFULL and not verdict.hard


@pytest.mark.parametrize("text", [
    "550 Ihre IP-Adresse 192.0.2.7 ist gesperrt (Sperrliste)",
    "550 Adresse IP 192.0.2.7 bloquée : liste noire",
    "550 Su dirección IP está en una lista negra",
    "550 Indirizzo IP 192.0.2.7 bloccato, lista nera",
    "550 Uw IP-adres staat op een zwarte lijst",
])
def test_a_blocklisting_in_another_language_at_rcpt_never_suppresses(text: str) -> None:
    # at RCPT a 5xx naming no reason would be read as an unknown user: our IP is the problem
    verdict = judge(reply_code="550", stage=SmtpStage.RCPT, text=text)
    assert verdict.reason is R.BLOCKED and not verdict.hard


def test_a_locked_mailbox_is_not_a_blocked_ip() -> None:
    verdict = judge(reply_code="550", stage=SmtpStage.RCPT, text="550 Das Postfach ist gesperrt")
    assert verdict.reason is R.SUSPEND and not verdict.hard
