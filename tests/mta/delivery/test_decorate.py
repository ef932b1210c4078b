"""decorate(): the VERP return path and the List-Unsubscribe headers delivery adds."""

from __future__ import annotations

from email import message_from_bytes, policy

from phigate.config import settings_from_mapping
from phigate.mta.delivery.decorate import decorate
from phigate.policy.tokens import TokenSigner, token_in_address
from phigate.queue.models import MessageClass

SIGNER = TokenSigner(b"k" * 32)
SETTINGS = settings_from_mapping({
    "server": {"domain": "practice.test"},
    "http": {"public_url": "https://relay.practice.test"},
    "feedback": {"bounce_domain": "bounces.practice.test"},
    "policy": {"postal_address": "Practice, 1 Main St, Springfield"},
})
BODY = (b"From: news@practice.test\r\nTo: fan@example.org\r\n"
        b"List-Unsubscribe: <mailto:app-own@practice.test>\r\n"
        b"Subject: Spring\r\n\tnewsletter\r\n\r\nHello\r\n\r\n.dots and =3D bytes \xc3\xa9\r\n")


def test_marketing_gets_verp_one_click_headers_and_a_visible_footer() -> None:
    out = decorate(BODY, recipient="fan@example.org", sender="news@practice.test",
                   message_class=MessageClass.MARKETING, campaign_id="spring", settings=SETTINGS,
                   signer=SIGNER)
    kind, token = token_in_address(out.mail_from) or ("", "")
    assert out.mail_from.endswith("@bounces.practice.test") and kind == "verp"
    claims = SIGNER.parse(token, kind="verp")
    assert claims is not None
    assert (claims.recipient, claims.campaign, claims.scope) == ("fan@example.org", "spring",
                                                                 "all")
    # The application's text is kept; the footer follows it (see test_footer).
    text = message_from_bytes(out.body, policy=policy.default).get_content().replace("\r\n", "\n")
    assert text.startswith("Hello\n\n.dots and =3D bytes \xe9\n")
    assert "1 Main St" in text and "/u/" in text
    assert b"\n" not in out.body.replace(b"\r\n", b"")  # no bare LF on the wire
    parsed = message_from_bytes(out.body, policy=policy.default)
    [unsubscribe] = parsed.get_all("List-Unsubscribe") or []  # the application's one is replaced
    assert "app-own" not in unsubscribe
    https, mailto = [part.strip(" <>") for part in str(unsubscribe).split(",")]
    assert https.startswith("https://relay.practice.test/u/")
    assert mailto.startswith("mailto:unsubscribe+") and mailto.endswith(
        "@bounces.practice.test")
    one_click = SIGNER.parse(https.rsplit("/", 1)[1], kind="unsubscribe")
    assert one_click is not None and one_click.recipient == "fan@example.org"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Subject"] == "Spring\tnewsletter"  # the folded field kept intact
    assert all(len(line) <= 998 for line in out.body.split(b"\r\n"))


def test_treatment_gets_verp_only_and_null_sender_stays_null() -> None:
    out = decorate(BODY, recipient="pat@example.org", sender="desk@practice.test",
                   message_class=MessageClass.TREATMENT, campaign_id=None, settings=SETTINGS,
                   signer=SIGNER)
    assert out.mail_from.startswith("bounces+") and out.body == BODY
    dsn = decorate(BODY, recipient="pat@example.org", sender="",
                   message_class=MessageClass.OPERATIONS, campaign_id=None,
                   settings=SETTINGS, signer=SIGNER)
    assert dsn.mail_from == ""


def test_without_token_key_nothing_changes() -> None:
    out = decorate(BODY, recipient="fan@example.org", sender="news@practice.test",
                   message_class=MessageClass.MARKETING, campaign_id="spring", settings=SETTINGS,
                   signer=None)
    assert (out.mail_from, out.body) == ("news@practice.test", BODY)
