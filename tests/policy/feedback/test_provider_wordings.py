"""Wording classes of large providers, paraphrased (not copied from any
sample of the evaluation set): each reads as the reason its published meaning gives, also
where the stage or the reply code alone would say otherwise."""

from __future__ import annotations

import pytest

from phigate.policy.feedback.reasons import BounceReason, judge

R = BounceReason


@pytest.mark.parametrize(("text", "reason"), [
    # Exchange / Office 365 style (resolver and store-driver tokens, enhanced sub-codes)
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient pat@example.net not found by SMTP "
     "address lookup", R.USERUNKNOWN),
    ("#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##", R.USERUNKNOWN),
    ("554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException", R.MAILBOXFULL),
    ("550 5.7.606 Access denied, banned sending IP [192.0.2.9]", R.BLOCKED),
    ("550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP",
     R.BLOCKED),
    ("550 5.7.509 Access denied, sending domain example.org does not pass DMARC verification",
     R.AUTHFAILURE),
    ("550 5.4.310 DNS domain example.net does not exist [Message=InfoDomainNonexistent]",
     R.HOSTUNKNOWN),
    ("450 4.4.312 DNS query failed", R.NETWORKERROR),
    ("554 5.4.14 Hop count exceeded - possible mail loop", R.NETWORKERROR),
    ("550 5.4.316 Message expired, connection refused", R.EXPIRED),
    # Gmail style
    ("550-5.1.1 The email account that you tried to reach does not exist. Please check the "
     "address for typos", R.USERUNKNOWN),
    ("452-4.2.2 The email account that you tried to reach is over quota", R.MAILBOXFULL),
    ("550 5.2.1 The email account that you tried to reach is disabled", R.SUSPEND),
    ("550-5.7.1 [192.0.2.5] Our system has detected that this message is likely unsolicited "
     "mail", R.SPAMDETECTED),
    ("421-4.7.0 [192.0.2.5] Our system has detected an unusual rate of unsolicited mail "
     "originating from your IP address", R.BADREPUTATION),
    ("550-5.7.26 This mail has been blocked because the sender is unauthenticated; senders "
     "must authenticate with SPF or DKIM", R.AUTHFAILURE),
    ("550-5.7.25 The IP address sending this message does not have a PTR record", R.REQUIREPTR),
    ("550-5.7.1 The user or domain that you are sending to has a policy that prohibited the "
     "mail that you sent", R.POLICYVIOLATION),
    ("The response from the remote server was: 550 5.7.1 Service unavailable; client "
     "[192.0.2.5] blocked using a DNS blocklist", R.BLOCKED),
])
def test_provider_wording(text: str, reason: BounceReason) -> None:
    assert judge(text=text).reason is reason


@pytest.mark.parametrize(("text", "reason"), [
    # near misses of the rules above: our own sender's domain, the SMTP AUTH of our client
    ("553 5.1.8 Sender domain example.org does not exist", R.REJECTED),
    ("530 5.7.0 Must authenticate first (SMTP AUTH required)", R.SECURITYERROR),
])
def test_provider_wording_near_misses(text: str, reason: BounceReason) -> None:
    assert judge(text=text).reason is reason


def test_a_domain_not_found_is_a_dns_answer_an_address_not_found_is_a_bad_address() -> None:
    domain = judge(text="Your message wasn't delivered to pat@example.net because the domain "
                        "example.net couldn't be found. Check for typos and try again.")
    assert domain.reason is R.NETWORKERROR and not domain.hard
    address = judge(text="Your message wasn't delivered to pat@example.net because the "
                         "address couldn't be found. Check for typos and try again.")
    assert address.reason is R.USERUNKNOWN and address.hard


def test_a_missing_domain_outweighs_a_summary_title_naming_the_address() -> None:
    # a provider's title says "Address not found" whatever part of the address failed
    verdict = judge(text="** Address not found ** Your message wasn't delivered to "
                         "pat@example.net because the domain example.net couldn't be found. "
                         "The response was: DNS Error: lookup of example.net failed")
    assert verdict.reason is R.NETWORKERROR and not verdict.hard
