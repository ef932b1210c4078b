"""Each policy rule through a real SMTP session: the reply code and the reason text."""

from __future__ import annotations

import ssl

from sqlalchemy import func, select

from phigate.audit.log import Actor
from phigate.observability.metrics import METRICS
from phigate.queue.models import Message, MessageState
from policy.support import PHI_RESULT, PolicyRelay, mail, submit

REMINDER = "treatment"


def queued(relay: PolicyRelay) -> int:
    with relay.runtime.store.writing() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


async def test_marketing_without_consent_refused_at_rcpt_and_counted(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext
) -> None:
    policy_relay.grant("fan@example.org")
    before = METRICS.policy_decisions.labels(rule="marketing-consent", action="reject")._value.get()
    result = await submit(policy_relay, client_tls, mail(campaign="spring"),
                          ["stranger@example.org", "fan@example.org"], user="news")
    code, text = result.rcpt["stranger@example.org"]
    assert (code, text) == (550, "5.7.1 No marketing consent on file for this recipient")
    assert result.rcpt["fan@example.org"][0] == 250
    after = METRICS.policy_decisions.labels(rule="marketing-consent", action="reject")._value.get()
    assert after == before + 1
    view = policy_relay.runtime.store.get_message(result.queued_id)
    assert [r.address for r in view.recipients] == ["fan@example.org"]


async def test_marketing_class_from_header_rechecks_every_recipient_at_data(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext
) -> None:
    # "clinic" sends treatment by default, so RCPT cannot know this is marketing yet.
    policy_relay.grant("fan@example.org")
    result = await submit(policy_relay, client_tls,
                          mail(message_class="marketing", campaign="spring"),
                          ["fan@example.org", "stranger@example.org"])
    assert all(code == 250 for code, _ in result.rcpt.values())
    assert result.data is not None
    assert result.data[0] == 550
    assert result.data[1] == ("5.7.1 Message refused: recipient <stranger@example.org>: "
                              "No marketing consent on file for this recipient")
    assert queued(policy_relay) == 0


async def test_unsubscribed_gets_no_marketing_but_still_gets_reminders(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext
) -> None:
    policy_relay.grant("pat@example.org")
    policy_relay.stores.suppressions.add("Pat@Example.org", "marketing", kind="unsubscribe",
                                         reason="test", source="one-click",
                                         actor=Actor("phigate"))
    refused = await submit(policy_relay, client_tls, mail(campaign="spring"),
                           ["pat@example.org"], user="news")
    assert refused.rcpt["pat@example.org"] == (
        550, "5.7.1 Recipient has unsubscribed from marketing mail")
    reminder = await submit(policy_relay, client_tls, mail(message_class=REMINDER),
                            ["pat@example.org"])
    assert reminder.rcpt["pat@example.org"][0] == 250
    view = policy_relay.runtime.store.get_message(reminder.queued_id)
    assert view.state == MessageState.ACTIVE


async def test_hard_bounced_address_refused_for_treatment_too(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext
) -> None:
    policy_relay.stores.suppressions.add("gone@example.org", "all", kind="hard_bounce",
                                         reason="5.1.1", source="feedback",
                                         actor=Actor("phigate"))
    result = await submit(policy_relay, client_tls, mail(message_class=REMINDER),
                          ["gone@example.org"])
    code, text = result.rcpt["gone@example.org"]
    assert code == 550 and text.startswith("5.7.1 Recipient address is suppressed")
    assert result.data is None


async def test_null_mx_and_bad_syntax_refused(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext
) -> None:
    result = await submit(policy_relay, client_tls, mail(message_class=REMINDER),
                          ["someone@nullmx.test", "a%b@example.org", "ok@example.org"])
    assert result.rcpt["someone@nullmx.test"] == (
        556, "5.1.10 Recipient domain accepts no mail (null MX)")
    assert result.rcpt["a%b@example.org"][0] == 550
    assert result.rcpt["a%b@example.org"][1].startswith("5.1.3")
    assert result.rcpt["ok@example.org"][0] == 250


async def test_marketing_needs_a_campaign_and_waits_for_approval(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext
) -> None:
    policy_relay.grant("fan@example.org")
    missing = await submit(policy_relay, client_tls, mail(), ["fan@example.org"], user="news")
    assert missing.data is not None and missing.data[0] == 550
    assert "X-Phigate-Campaign" in missing.data[1]
    waiting = await submit(policy_relay, client_tls, mail(campaign="spring-2027"),
                           ["fan@example.org"], user="news")
    view = policy_relay.runtime.store.get_message(waiting.queued_id)
    assert view.state == MessageState.AWAITING_APPROVAL
    assert view.hold_reason == "campaign spring-2027 awaiting approval"


async def test_phi_in_marketing_needs_hipaa_authorization(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext
) -> None:
    policy_relay.use_scanner(PHI_RESULT)
    for address in ("auth@practice.test", "plain@practice.test"):
        policy_relay.grant(address)
    policy_relay.grant("auth@practice.test", "hipaa_marketing_authorization")
    policy_relay.stores.campaigns.approve("recall", actor=Actor("alice"))
    plain = await submit(policy_relay, client_tls, mail(campaign="recall",
                                                        to="plain@practice.test"),
                         ["plain@practice.test"], user="news")
    view = policy_relay.runtime.store.get_message(plain.queued_id)
    assert view.state == MessageState.QUARANTINED
    assert "without a HIPAA marketing authorization" in (view.hold_reason or "")
    authorized = await submit(policy_relay, client_tls, mail(campaign="recall",
                                                             to="auth@practice.test"),
                              ["auth@practice.test"], user="news")
    view = policy_relay.runtime.store.get_message(authorized.queued_id)
    assert view.state == MessageState.ACTIVE
    assert any(h["rule"] == "phi-by-class" and h["action"] == "tag" for h in view.rule_hits)


async def test_phi_destination_allow_list_and_email_phi_consent(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext
) -> None:
    policy_relay.use_scanner(PHI_RESULT)
    inside = await submit(policy_relay, client_tls, mail(message_class=REMINDER),
                          ["nurse@practice.test"])
    assert policy_relay.runtime.store.get_message(inside.queued_id).state == MessageState.ACTIVE
    outside = await submit(policy_relay, client_tls, mail(message_class=REMINDER),
                           ["patient@example.org"])
    view = policy_relay.runtime.store.get_message(outside.queued_id)
    assert view.state == MessageState.QUARANTINED
    assert any(h["rule"] == "phi-destination" for h in view.rule_hits)
    policy_relay.grant("patient@example.org", "email_phi")
    consented = await submit(policy_relay, client_tls, mail(message_class=REMINDER),
                             ["patient@example.org"])
    view = policy_relay.runtime.store.get_message(consented.queued_id)
    assert view.state == MessageState.ACTIVE


async def test_auto_forwarded_phi_to_outside_domain_refused(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext
) -> None:
    policy_relay.use_scanner(PHI_RESULT)
    policy_relay.grant("patient@example.org", "email_phi")  # consent does not cover forwarding
    result = await submit(policy_relay, client_tls,
                          mail(message_class=REMINDER, Resent_From="nurse@practice.test"),
                          ["patient@example.org"])
    assert result.data == (550, "5.7.1 Message refused: Auto-forwarded message with PHI to an "
                                "outside domain")
    internal = await submit(policy_relay, client_tls,
                            mail(message_class=REMINDER, Auto_Submitted="auto-forwarded"),
                            ["nurse@practice.test"])
    assert internal.data is not None and internal.data[0] == 250
