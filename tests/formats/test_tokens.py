"""Unsubscribe / VERP tokens: round trip, forgery, mangling, case folding, size."""

from __future__ import annotations

import pytest

from phigate.policy.tokens import (
    TokenClaims,
    TokenSigner,
    token_in_address,
    unsubscribe_headers,
    verp_address,
)

KEY = b"k" * 32


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner(KEY)


CLAIMS = [
    TokenClaims("unsubscribe", "jane.doe@example.com"),
    TokenClaims("unsubscribe", "Jane.Doe@Example.COM", campaign="spring-recall-2025"),
    TokenClaims("verp", "a@b.c", scope="all", message_id="01HZX3Q9"),
    TokenClaims("verp", "pätient@exämple.org", scope="custom-scope", campaign="c", message_id="m"),
]


@pytest.mark.parametrize("claims", CLAIMS)
def test_round_trip_and_lowercase_survives(signer: TokenSigner, claims: TokenClaims) -> None:
    token = signer.make(claims)
    assert token == token.lower() and token.isalnum()
    assert signer.parse(token) == claims
    assert signer.parse(token.upper()) == claims  # some MTAs change the case of local parts


def test_wrong_key_and_wrong_kind_are_rejected(signer: TokenSigner) -> None:
    token = signer.make(TokenClaims("verp", "jane@example.com"))
    assert TokenSigner(b"x" * 32).parse(token) is None
    assert signer.parse(token, kind="unsubscribe") is None
    assert signer.parse(token, kind="verp") is not None


def test_every_single_character_change_and_truncation_is_rejected(signer: TokenSigner) -> None:
    token = signer.make(TokenClaims("unsubscribe", "jane@example.com", campaign="c1"))
    for index in range(len(token)):
        for replacement in "a7q":
            if token[index] == replacement:
                continue
            mangled = token[:index] + replacement + token[index + 1 :]
            assert signer.parse(mangled) is None, (index, replacement)
    for cut in range(1, len(token)):
        assert signer.parse(token[:cut]) is None
        assert signer.parse(token[cut:]) is None
    for junk in ["", "====", "not a token", "ümlaut", token + "a", token + "aaaaaaaa"]:
        assert signer.parse(junk) is None


def test_forged_claims_with_reencoded_payload_are_rejected(signer: TokenSigner) -> None:
    # An attacker who decodes a token and swaps the recipient cannot fix up the MAC.
    import base64

    token = signer.make(TokenClaims("unsubscribe", "aaaa@example.com"))
    raw = bytearray(base64.b32decode(token.upper() + "=" * (-len(token) % 8)))
    raw[2:6] = b"bbbb"
    forged = base64.b32encode(bytes(raw)).decode().rstrip("=").lower()
    assert signer.parse(forged) is None


def test_verp_address_is_short_for_ordinary_recipients(signer: TokenSigner) -> None:
    address = verp_address(signer, TokenClaims("verp", "jane.doe@example.com"), "bounce.example")
    local = address.split("@")[0]
    assert local.startswith("bounces+") and len(local) <= 64
    kind_token = token_in_address(address.upper())
    assert kind_token is not None and kind_token[0] == "verp"
    assert signer.parse(kind_token[1], kind="verp") == TokenClaims("verp", "jane.doe@example.com")


def test_unsubscribe_headers(signer: TokenSigner) -> None:
    headers = unsubscribe_headers(
        signer, "jane@example.com", "camp", "https://mail.example.org/", "example.org"
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = headers["List-Unsubscribe"].split(", ")
    assert https.startswith("<https://mail.example.org/u/") and https.endswith(">")
    http_token = https[len("<https://mail.example.org/u/") : -1]
    mail_token = token_in_address(mailto[len("<mailto:") : -1])
    assert mail_token == ("unsubscribe", http_token)
    assert signer.parse(http_token, kind="unsubscribe") == TokenClaims(
        "unsubscribe", "jane@example.com", campaign="camp"
    )
    only_mailto = unsubscribe_headers(signer, "jane@example.com", None, "", "example.org")
    assert "List-Unsubscribe-Post" not in only_mailto
    assert only_mailto["List-Unsubscribe"].startswith("<mailto:unsubscribe+")


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenSigner(b"short")
