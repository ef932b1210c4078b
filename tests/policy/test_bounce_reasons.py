"""The bounce reason classifier: one function for DSNs and synchronous SMTP replies."""

from __future__ import annotations

import pytest

from phigate.policy.feedback.reasons import (
    BounceReason,
    ReasonGroup,
    SmtpStage,
    counts_against_address,
    judge,
)


def test_dnsbl_refusal_at_rcpt_is_a_blocklisting_not_a_bad_address() -> None:
    verdict = judge(reply_code="550", stage=SmtpStage.RCPT,
                    text="550 5.7.1 Service unavailable, client host [192.0.2.7] blocked "
                         "using a DNSBL")
    assert verdict.reason is BounceReason.BLOCKED
    assert verdict.group is ReasonGroup.SENDER
    assert not verdict.hard and verdict.permanent
    assert verdict.status == "5.7.1"


def test_unknown_user_is_hard_and_keeps_the_reported_status() -> None:
    verdict = judge(status="5.1.1", text="smtp; 550 5.1.1 <pat@example.net>... User unknown")
    assert (verdict.reason, verdict.hard, verdict.status, verdict.reply_code) == (
        BounceReason.USERUNKNOWN, True, "5.1.1", "550")


def test_full_mailbox_is_soft() -> None:
    verdict = judge(status="5.2.2", text="552 5.2.2 Mailbox full")
    assert verdict.reason is BounceReason.MAILBOXFULL and not verdict.hard
    assert counts_against_address(verdict.reason.value)


@pytest.mark.parametrize(("text", "reason"), [
    ("550 5.7.26 Unauthenticated email from example.org is not accepted due to domain's "
     "DMARC policy", BounceReason.AUTHFAILURE),
    ("550 5.7.1 SPF check failed", BounceReason.AUTHFAILURE),
    ("550 5.7.25 The IP address sending this message does not have a PTR record setup",
     BounceReason.REQUIREPTR),
    ("421 4.7.0 IP not in whitelist, poor reputation", BounceReason.BADREPUTATION),
    ("554 5.7.1 Message rejected as spam", BounceReason.SPAMDETECTED),
    ("552 5.3.4 Message size exceeds fixed maximum message size", BounceReason.MESGTOOBIG),
    ("550 5.1.8 Sender address rejected: Domain not found", BounceReason.REJECTED),
    ("454 4.7.1 Relay access denied", BounceReason.NORELAYING),
    ("421 Too many concurrent SMTP connections", BounceReason.TOOMANYCONN),
    ("556 5.1.10 Recipient address has null MX", BounceReason.NOTACCEPT),
    ("550 5.2.1 The email account that you tried to reach is disabled", BounceReason.SUSPEND),
])
def test_typical_phrases(text: str, reason: BounceReason) -> None:
    assert judge(text=text).reason is reason


def test_an_address_in_the_text_is_not_read_as_a_phrase() -> None:
    verdict = judge(text="550 5.1.1 <filtered@example.net>... User Unknown")
    assert verdict.reason is BounceReason.USERUNKNOWN and verdict.hard


def test_unknown_user_only_after_data_is_filtered_and_soft() -> None:
    verdict = judge(text="550 User unknown (in reply to end of DATA command)")
    assert verdict.reason is BounceReason.FILTERED and not verdict.hard


def test_stage_decides_when_the_text_does_not() -> None:
    assert judge(reply_code="550", text="550 Not today", stage=SmtpStage.MAIL).reason \
        is BounceReason.REJECTED
    assert judge(reply_code="554", text="554 No", stage=SmtpStage.CONNECT).reason \
        is BounceReason.BLOCKED


def test_no_status_given_gets_a_pseudo_status_naming_the_reason() -> None:
    assert judge(text="Mailbox is full").status == "5.0.922"
    assert judge(text="Mailbox is full", temporary=True).status == "4.0.922"
    assert judge().reason is BounceReason.UNDEFINED


def test_delayed_is_never_hard_for_a_mailbox_problem() -> None:
    verdict = judge(status="4.2.2", text="mailbox full", temporary=True)
    assert not verdict.hard and not verdict.permanent


@pytest.mark.parametrize("category", ["blocked", "authfailure", "requireptr", "spamdetected",
                                      "rejected", "mesgtoobig"])
def test_our_side_and_message_problems_never_count_against_the_address(category: str) -> None:
    assert not counts_against_address(category)


def test_gray_and_unknown_categories_count_soft() -> None:
    assert counts_against_address("filtered")
    assert counts_against_address(None)
    assert counts_against_address("something-new")
