"""One-click unsubscribe with a real HTTP client: suppress, cancel queued marketing, and
change nothing for forged tokens."""

from __future__ import annotations

import ssl

import aiohttp
from sqlalchemy import select

from phigate.policy.tokens import TokenSigner, unsubscribe_headers
from phigate.queue.models import RecipientState
from phigate.queue.policy_models import Campaign
from policy.support import ADMIN, PolicyRelay, mail, submit


def one_click_url(relay: PolicyRelay, signer: TokenSigner, recipient: str,
                  campaign: str | None) -> str:
    header = unsubscribe_headers(signer, recipient, campaign, relay.settings.http.public_url,
                                 "bounces.practice.test")["List-Unsubscribe"]
    public = header.split(">")[0].lstrip("<")
    path = public.removeprefix(relay.settings.http.public_url)
    listen = relay.settings.http.listen
    return f"http://{listen.host}:{listen.port}{path}"


def recipient_states(relay: PolicyRelay, message_id: str) -> list[RecipientState]:
    return [r.state for r in relay.runtime.store.get_message(message_id).recipients]


async def queue_marketing_and_reminder(relay: PolicyRelay, client_tls: ssl.SSLContext
                                       ) -> tuple[str, str]:
    relay.grant("fan@example.org")
    relay.stores.campaigns.approve("spring", actor=ADMIN)
    marketing = await submit(relay, client_tls, mail(campaign="spring", to="fan@example.org"),
                             ["fan@example.org"], user="news")
    reminder = await submit(relay, client_tls, mail(message_class="treatment",
                                                    to="fan@example.org"),
                            ["fan@example.org"])
    return marketing.queued_id, reminder.queued_id


async def test_one_click_post_suppresses_and_cancels_queued_marketing(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext, signer: TokenSigner
) -> None:
    marketing_id, reminder_id = await queue_marketing_and_reminder(policy_relay, client_tls)
    url = one_click_url(policy_relay, signer, "fan@example.org", "spring")
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as page:  # a GET (link scanners) changes nothing
            assert page.status == 200
            assert 'name="List-Unsubscribe" value="One-Click"' in await page.text()
        assert policy_relay.stores.suppressions.entries() == []
        async with http.post(url, data={"List-Unsubscribe": "One-Click"},
                             allow_redirects=False) as response:
            assert response.status == 200
            assert "Set-Cookie" not in response.headers
            assert "Location" not in response.headers
            assert "no longer receive marketing" in await response.text()
    [entry] = policy_relay.stores.suppressions.entries()
    assert (entry.address, entry.scope, entry.kind, entry.source, entry.campaign_id) == (
        "fan@example.org", "marketing", "unsubscribe", "one-click", "spring")
    assert recipient_states(policy_relay, marketing_id) == [RecipientState.CANCELLED]
    assert recipient_states(policy_relay, reminder_id) == [RecipientState.QUEUED]
    [audit] = policy_relay.runtime.audit.entries(action="suppression.add")
    assert audit["detail"]["cancelled_messages"] == [marketing_id]
    with policy_relay.runtime.store.writing() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.id == "spring"))
        assert campaign is not None and campaign.unsubscribes == 1


async def test_forged_or_mangled_tokens_change_nothing(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext, signer: TokenSigner
) -> None:
    marketing_id, _ = await queue_marketing_and_reminder(policy_relay, client_tls)
    url = one_click_url(policy_relay, signer, "fan@example.org", "spring")
    token = url.rsplit("/", 1)[1]
    flipped = token[:-1] + ("a" if token[-1] != "a" else "b")
    other_key = one_click_url(policy_relay, TokenSigner(b"another key of 32 bytes........."),
                              "fan@example.org", "spring")
    base = url.rsplit("/", 1)[0]
    async with aiohttp.ClientSession() as http:
        for bad in (f"{base}/{flipped}", other_key, f"{base}/not-base32!", f"{base}/{'a' * 900}"):
            async with http.post(bad, data={"List-Unsubscribe": "One-Click"},
                                 allow_redirects=False) as response:
                assert response.status == 404, bad
            async with http.get(bad) as response:
                assert response.status == 404
        async with http.post(url, data="", allow_redirects=False) as response:
            assert response.status == 400  # genuine token, but not a one-click request
    assert policy_relay.stores.suppressions.entries() == []
    assert recipient_states(policy_relay, marketing_id) == [RecipientState.QUEUED]
