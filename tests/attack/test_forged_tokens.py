"""Forged unsubscribe tokens change nothing: at the signer, over one-click HTTP, and as a
mailto unsubscribe address on the feedback listener. Each path has a genuine-token control,
so a refusal is known to come from the token check."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from conftest import RelayHandle
from fuzz.wire import Wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phigate.config import Settings
from phigate.policy.suppression import SuppressionStore
from phigate.policy.token_registry import SqlTokenRegistry
from phigate.policy.tokens import TokenClaims, TokenSigner
from phigate.queue.db import make_engine, upgrade
from phigate.serve import RunningServices, start_services, stop_services

B32 = "abcdefghijklmnopqrstuvwxyz234567"
VICTIM = "victim@example.org"
emails = st.emails().map(str.lower)


@pytest.fixture
def signer(token_key: Path, settings: Settings) -> Iterator[TokenSigner]:
    """Tokens recorded in (and checked against) the relay's own database."""
    engine = make_engine(settings.storage.url)
    upgrade(engine)
    yield TokenSigner.from_key_file(token_key, SqlTokenRegistry(engine))
    engine.dispose()


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=").lower()


def b32decode(token: str) -> bytes:
    text = token.upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


SIGNER_FUZZ = settings(max_examples=300, deadline=None, database=None,
                       suppress_health_check=[HealthCheck.function_scoped_fixture])


@SIGNER_FUZZ
@given(token=st.one_of(st.text(alphabet=B32, min_size=1, max_size=120),
                       st.binary(min_size=1, max_size=80).map(b32), st.text(max_size=80)))
def test_made_up_tokens_are_refused(signer: TokenSigner, token: str) -> None:
    assert signer.parse(token) is None


@SIGNER_FUZZ
@given(recipient=emails, campaign=st.none() | st.text(min_size=1, max_size=20))
def test_claims_swapped_under_a_genuine_mac_are_refused(
    signer: TokenSigner, recipient: str, campaign: str | None
) -> None:
    """Take a genuine token for the attacker's own address and graft its MAC onto claims
    naming someone else (or another campaign or scope)."""
    own = b32decode(signer.make(TokenClaims("unsubscribe", "attacker@example.net")))
    mac = own[-10:]
    for forged_claims in (TokenClaims("unsubscribe", recipient, campaign=campaign),
                          TokenClaims("unsubscribe", "attacker@example.net", scope="all")):
        other_key = TokenSigner(b"attacker-chosen-key-0123456789")
        payload = b32decode(other_key.make(forged_claims))[:-10]
        if forged_claims == TokenClaims("unsubscribe", "attacker@example.net"):
            continue
        assert signer.parse(b32(payload + mac)) is None


@SIGNER_FUZZ
@given(recipient=emails)
def test_tokens_signed_with_another_key_or_of_another_kind_are_refused(
    signer: TokenSigner, recipient: str
) -> None:
    assert signer.parse(TokenSigner(b"guessed-key-guessed-key").make(
        TokenClaims("unsubscribe", recipient))) is None
    verp = signer.make(TokenClaims("verp", recipient))
    assert signer.parse(verp, kind="unsubscribe") is None


# -- through the services ------------------------------------------------------------------


@pytest.fixture
async def http_service(relay: RelayHandle, settings: Settings
                       ) -> AsyncIterator[RunningServices]:
    """The http role (one-click unsubscribe) next to the relay, on the same database."""
    running = await start_services(settings, {"http"})
    try:
        yield running
    finally:
        await stop_services(running, grace=1)


def suppressed(relay: RelayHandle) -> list[str]:
    store = SuppressionStore(relay.runtime.engine, relay.runtime.audit)
    return [entry.address for entry in store.entries()]


def forged_tokens(signer: TokenSigner) -> list[str]:
    genuine = signer.make(TokenClaims("unsubscribe", VICTIM))
    return [
        TokenSigner(b"guessed-key-guessed-key").make(TokenClaims("unsubscribe", VICTIM)),
        signer.make(TokenClaims("verp", VICTIM)),  # a bounce token replayed
        genuine[:-1] + ("a" if genuine[-1] != "a" else "b"),
        genuine[:-4],
        "a" * 40,
        "x" * 700,
    ]


async def test_forged_one_click_unsubscribes_are_refused(
    relay: RelayHandle, http_service: RunningServices, signer: TokenSigner
) -> None:
    base = f"http://127.0.0.1:{relay.settings.http.listen.port}/u/"
    form = {"List-Unsubscribe": "One-Click"}
    async with aiohttp.ClientSession() as client:
        for token in forged_tokens(signer):
            async with client.post(base + token, data=form) as response:
                assert response.status == 404, token
            async with client.get(base + token) as response:
                assert response.status == 404, token
        assert suppressed(relay) == []
        genuine = signer.make(TokenClaims("unsubscribe", VICTIM))
        async with client.post(base + genuine, data=form) as response:
            assert response.status == 200
    assert suppressed(relay) == [VICTIM]


async def test_forged_mailto_unsubscribes_are_refused(
    relay: RelayHandle, signer: TokenSigner
) -> None:
    port = relay.settings.feedback.listen.port
    domain = relay.settings.server.domain
    wire, greeting = await Wire.open(port)
    assert greeting.startswith("220")
    assert (await wire.command(b"EHLO mailbox-provider.test")).startswith("250")
    assert (await wire.command(b"MAIL FROM:<" + VICTIM.encode() + b">")).startswith("250")
    for token in forged_tokens(signer)[:-1]:
        reply = await wire.command(f"RCPT TO:<unsubscribe+{token}@{domain}>".encode())
        assert reply.startswith("550"), (token, reply)
    genuine = signer.make(TokenClaims("unsubscribe", VICTIM))
    reply = await wire.command(f"RCPT TO:<unsubscribe+{genuine}@{domain}>".encode())
    assert reply.startswith("250"), reply
    await wire.close()
