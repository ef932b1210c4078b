"""Classes of evidence the reason classifier reads, each with made-up wording of its own
(never a sample of the evaluation set): which reply in a transcript is the failure, how far
a quoted reply reaches, what a generic status says, what a delay notice means."""

from __future__ import annotations

import pytest

from phigate.policy.feedback.reasons import BounceReason, SmtpStage, judge

R = BounceReason


def test_a_transcript_is_judged_by_its_failing_reply_not_the_ones_that_succeeded() -> None:
    verdict = judge(text="RCPT TO:<pat@example.net> -> 250 2.1.5 Recipient ok; DATA -> 354 go "
                         "ahead; . -> 452 4.3.1 Insufficient system storage")
    assert (verdict.reply_code, verdict.status) == ("452", "4.3.1")
    assert verdict.reason is R.SYSTEMFULL


def test_a_quoted_reply_ends_where_the_relay_repeats_its_own_summary() -> None:
    # the relay's summary ("Unknown address error") follows the reply it quotes; the reply
    # itself (5.7.1, no telling phrase) decides, and an unknown address is not claimed
    verdict = judge(status="5.7.1", text="5.1.0 - Unknown address error 550-'5.7.1 "
                    "<pat@example.net>... Not authorized' (attempts: 1). Reason: 5.1.0 - "
                    "Unknown address error")
    assert verdict.reason is R.SECURITYERROR and not verdict.hard


def test_a_reply_quoted_twice_is_still_one_reply() -> None:
    verdict = judge(status="5.2.1", text="host mx.example.net [192.0.2.3]: 550 5.2.1 host "
                    "mx.example.net [192.0.2.3]: 550 5.2.1 <pat@example.net>... User unknown")
    assert verdict.reason is R.USERUNKNOWN and verdict.hard


def test_a_generic_summary_line_does_not_outweigh_the_remote_reply() -> None:
    verdict = judge(status="5.2.0", text="... while talking to mx.example.net.: >>> DATA <<< "
                    "550 : User unknown 554 5.0.0 Service unavailable")
    assert verdict.reason is R.FILTERED and not verdict.hard


@pytest.mark.parametrize("text", ["550 : User unknown", "550: : User unknown"])
def test_user_unknown_naming_no_address_is_a_recipient_filter(text: str) -> None:
    verdict = judge(status="5.0.0", text=text)
    assert verdict.reason is R.FILTERED and not verdict.hard
    # with an address, refused at RCPT, it is the plain unknown user
    named = judge(status="5.0.0", stage=SmtpStage.RCPT, text="550 <pat@example.net>: User unknown")
    assert named.reason is R.USERUNKNOWN and named.hard


def test_a_temporary_other_or_undefined_status_names_no_reason() -> None:
    assert judge(status="4.3.0", text="451 4.3.0 Please try again later").reason is R.ONHOLD
    assert judge(status="5.3.0", text="550 5.3.0 Please do not").reason is R.SYSTEMERROR


def test_a_delay_notice_without_a_reply_is_expired_a_live_4xx_stays_on_hold() -> None:
    notice = judge(status="4.4.0", temporary=True,
                   text="This is only a notification; the server will keep trying.")
    assert notice.reason is R.EXPIRED and not notice.permanent
    live = judge(reply_code="451", text="451 Please come back", temporary=True,
                 stage=SmtpStage.RCPT)
    assert live.reason is not R.EXPIRED


def test_not_authorized_at_mail_from_is_our_sender_rejected() -> None:
    verdict = judge(status="5.7.1", reply_code="550", stage=SmtpStage.MAIL,
                    text="550 5.7.1 Access denied")
    assert verdict.reason is R.REJECTED


@pytest.mark.parametrize(("text", "reason"), [
    ("Your message was not delivered within 3 days: the remote host is not responding.",
     R.EXPIRED),
    ("451 4.3.0 Error: mailbox write error, try again", R.SYSTEMERROR),
    ("550 5.4.1 All recipient addresses rejected : not allowed", R.REJECTED),
])
def test_more_phrase_classes(text: str, reason: BounceReason) -> None:
    assert judge(text=text).reason is reason


@pytest.mark.parametrize(("text", "reason"), [
    # our sender address (not our IP) on a list, a link in the message on a list
    ("550 5.7.1 Your sender address is on our blocklist", R.REJECTED),
    ("554 5.7.1 Message refused: a link in the message is listed on SURBL", R.SPAMDETECTED),
    # our host refused: dynamic IPs, dropped connections, use your provider's server
    ("550 Mail from dynamic IPs is not accepted here", R.BLOCKED),
    ("421 Connection dropped by remote host", R.BLOCKED),
    ("550 Please use the SMTP server of your provider", R.BLOCKED),
    ("554 Your message was blocked by our spam filter: message content rejected", R.SPAMDETECTED),
    # the envelope sender itself
    ("550 5.7.1 BATV check failed for the return path", R.REJECTED),
    ("550 Null sender is not allowed for this recipient", R.REJECTED),
    ("553 Sender email address rejected", R.REJECTED),
    # the recipient's own filter, the mailbox, the domain, the route
    ("550 The recipient is only accepting mail from approved addresses", R.FILTERED),
    ("452 4.2.2 Not enough disk space in the user's mail folder", R.MAILBOXFULL),
    ("550 Account archived recipient", R.SUSPEND),
    ("550 Name or service not known", R.HOSTUNKNOWN),
    ("451 Host name lookup failure, will retry", R.NETWORKERROR),
    ("550 Relaying mail to other domains is not allowed", R.NORELAYING),
    ("554 Message size limit exceeded for this server", R.MESGTOOBIG),
    ("550 Closed mailing list: members only", R.POLICYVIOLATION),
    ("451 Delivery attempts will continue to be made for 2 days", R.EXPIRED),
])
def test_phrase_classes_of_sisimais_reasons(text: str, reason: BounceReason) -> None:
    assert judge(text=text).reason is reason


# -- classes added in the second pass (made-up wording) ---------------------------------------


def test_a_refusal_for_sending_to_many_bad_addresses_blames_our_sending() -> None:
    verdict = judge(text="554 Rejected: too many invalid recipients from your server today")
    assert verdict.reason is R.BLOCKED and not verdict.hard


def test_a_refusal_of_ipv6_delivery_is_about_our_connection_not_the_domain() -> None:
    verdict = judge(text="550 This host does not accept mail over IPv6, use IPv4")
    assert verdict.reason is R.BLOCKED and not verdict.hard


def test_a_mailbox_no_longer_on_the_server_has_moved() -> None:
    verdict = judge(text="550 pat is no longer on this server")
    assert verdict.reason is R.HASMOVED and verdict.hard


def test_a_gateway_that_does_not_know_the_sender_rejects_our_sender() -> None:
    verdict = judge(text="550 'someone@example.org' is not a registered gateway user")
    assert verdict.reason is R.REJECTED and not verdict.hard


def test_an_ambiguous_destination_address_is_not_a_bad_address() -> None:
    # RFC 3463 X.1.4: the address matches several mailboxes; the address is not unknown
    verdict = judge(status="5.1.4", text="550 5.1.4 Please be more specific")
    assert verdict.reason is R.FILTERED and not verdict.hard


def test_a_permanent_unable_to_route_is_a_domain_without_mail_host() -> None:
    # RFC 3463 X.4.4: no routing information for the domain. Permanent: the domain has no
    # mail host (a bad address); transient: a DNS trouble that may pass
    permanent = judge(status="5.4.4", text="550 5.4.4 Unable to route")
    assert permanent.reason is R.HOSTUNKNOWN and permanent.hard
    transient = judge(status="4.4.4", text="451 4.4.4 Unable to route")
    assert transient.reason is R.NETWORKERROR and not transient.hard
    # the remote's words still come first: a broken DNS answer is not a missing domain
    broken = judge(status="5.4.4", text="Name service error: malformed name server reply")
    assert broken.reason is R.NETWORKERROR and not broken.hard


# -- an unknown user under an undefined status (third pass) -----------------------------------


@pytest.mark.parametrize(("status", "text"), [
    ("5.0.0", "550 Sorry, no mailbox here by that name"),
    ("5.0.0", "smtp; 550 pat@example.net... Recipient does not exist"),
    ("5.3.0", "5.3.0 - Other mail system problem 550-'Unknown recipient pat@example.net'"),
])
def test_an_unknown_user_under_an_undefined_status_at_no_stage_is_gray(
        status: str, text: str) -> None:
    verdict = judge(status=status, text=text, summary="")
    assert verdict.reason is R.FILTERED and not verdict.hard


@pytest.mark.parametrize(("status", "text", "summary"), [
    # a refusal at RCPT is about the address
    ("5.0.0", "550 Sorry, no mailbox here by that name (in reply to RCPT TO command)", None),
    # an address status says so
    ("5.1.1", "550 Sorry, no mailbox here by that name", None),
    ("5.0.0", "550 5.1.1 Sorry, no mailbox here by that name", None),
    # the reporting MTA's own verdict, beside the remote's reply
    ("5.0.0", "550 Sorry, no mailbox here by that name",
     "We could not deliver to pat: the address could not be found."),
    # no status at all: the words are all there is (unchanged)
    (None, "550 Sorry, no mailbox here by that name", None),
])
def test_an_unknown_user_with_address_evidence_stays_a_bad_address(
        status: str | None, text: str, summary: str | None) -> None:
    verdict = judge(status=status, text=text, summary=summary)
    assert verdict.reason is R.USERUNKNOWN and verdict.hard
