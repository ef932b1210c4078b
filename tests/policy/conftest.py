"""A relay with the policy stores, the feedback listener and the HTTP endpoint running.

DNS comes from a dnslib server on loopback (``nullmx.test`` publishes a null MX), tokens
from a fresh key, and a deterministic scanner can be put in place of the NLP pool to drive
the PHI rules through real SMTP sessions without loading spaCy.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from helpers.dns_server import DnsServer
from helpers.net import free_port

from phigate.config import Settings
from phigate.policy.token_registry import SqlTokenRegistry
from phigate.policy.tokens import TokenSigner
from phigate.queue.db import make_engine, upgrade
from phigate.serve import start_services, stop_services
from policy.support import PASSWORD, PolicyRelay


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer(free_port(socket.SOCK_DGRAM), {
        "nullmx.test": [("MX", "0 .")],
        "example.org": [("MX", "10 mx.example.org.")],
    }).start()
    yield server
    server.stop()


@pytest.fixture
def token_key(tmp_path: Path) -> Path:
    path = tmp_path / "token.key"
    path.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    return path


@pytest.fixture
def signer(token_key: Path, policy_settings: Settings) -> Iterator[TokenSigner]:
    """Tokens recorded in (and checked against) the relay's own database."""
    engine = make_engine(policy_settings.storage.url)
    upgrade(engine)
    yield TokenSigner.from_key_file(token_key, SqlTokenRegistry(engine))
    engine.dispose()


@pytest.fixture
def policy_settings(make_settings: Callable[..., Settings], dns_server: DnsServer,
                    token_key: Path) -> Settings:
    return make_settings(
        policy={"token_key_file": str(token_key), "phi_allowed_domains": ["practice.test"],
                "campaign_min_volume": 10, "dns_timeout_seconds": 2.0},
        delivery={"dns_servers": [dns_server.address]},
        http={"public_url": "https://relay.practice.test"},
        feedback={"bounce_domain": "bounces.practice.test", "soft_bounce_limit": 3},
    )


@pytest.fixture
async def policy_relay(policy_settings: Settings) -> AsyncIterator[PolicyRelay]:
    engine = make_engine(policy_settings.storage.url)
    upgrade(engine)
    engine.dispose()
    running = await start_services(policy_settings, {"smtp", "http"})
    accounts = running.runtime.accounts
    accounts.add("clinic", PASSWORD, senders=["practice.test"],
                 classes=["treatment", "operations", "marketing"])
    accounts.add("news", PASSWORD, senders=["practice.test"], classes=["marketing"])
    assert running.policy_stores is not None
    try:
        yield PolicyRelay(policy_settings, running, running.policy_stores)
    finally:
        await stop_services(running, grace=2)


