"""Issue 13 finding 4: unsubscribe and VERP tokens no longer carry the address.

Tokens are a keyed id plus a MAC; the id is mapped to the recipient in the database.
Old (v1, address-bearing) tokens keep working until the cut-off migration 0005 records,
only on installations that had already sent mail.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine

from phigate.policy import token_legacy
from phigate.policy.token_registry import SqlTokenRegistry
from phigate.policy.tokens import (
    TOKEN_LIFETIME,
    MemoryTokenRegistry,
    TokenClaims,
    TokenSigner,
    verp_address,
)
from phigate.queue.db import alembic_config, make_engine, upgrade

KEY = b"opaque-token-test-key-0123456789"
PATIENT = "jane.longname-patient@example-hospital.org"


def b32decode(token: str) -> bytes:
    return base64.b32decode(token.upper() + "=" * (-len(token) % 8))


def legacy_token(claims: TokenClaims) -> str:
    raw = token_legacy.make_legacy(KEY, claims)
    return base64.b32encode(raw).decode().rstrip("=").lower()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_no_address_is_readable_in_unsubscribe_or_verp_tokens() -> None:
    signer = TokenSigner(KEY)
    for claims in (TokenClaims("unsubscribe", PATIENT, campaign="flu-2026"),
                   TokenClaims("verp", PATIENT, scope="all")):
        token = signer.make(claims)
        raw = b32decode(token)
        assert len(token) == 32 and token.isalnum() and token == token.lower()
        for part in (PATIENT, "jane", "example-hospital", "flu-2026"):
            assert part.encode() not in raw and part not in token
        assert signer.parse(token.upper()) == claims  # local parts get case-folded
    # The same claims give the same token (counted once); a VERP address always fits.
    assert signer.make(TokenClaims("verp", PATIENT)) == signer.make(TokenClaims("verp", PATIENT))
    local = verp_address(signer, TokenClaims("verp", "x" * 200 + "@example.org"),
                         "b.example").split("@")[0]
    assert len(local) <= 64


def test_a_token_unknown_to_the_registry_or_expired_is_refused() -> None:
    now = [datetime(2026, 12, 2, tzinfo=UTC)]
    signer = TokenSigner(KEY, MemoryTokenRegistry(), clock=lambda: now[0])
    token = signer.make(TokenClaims("verp", PATIENT))
    # Same key, another database: the MAC verifies, but nothing maps the id to anyone.
    other = TokenSigner(KEY, MemoryTokenRegistry())
    assert other.looks_genuine(token, kind="verp") and other.parse(token) is None
    now[0] += TOKEN_LIFETIME["verp"] + timedelta(seconds=1)
    assert signer.parse(token) is None


def test_tokens_resolve_through_the_database_across_signers(engine: Engine) -> None:
    upgrade(engine)
    maker = TokenSigner(KEY, SqlTokenRegistry(engine))
    claims = TokenClaims("unsubscribe", PATIENT, campaign="flu-2026")
    token = maker.make(claims)
    checker = TokenSigner(KEY, SqlTokenRegistry(engine))  # e.g. the HTTP listener
    assert checker.parse(token, kind="unsubscribe") == claims
    assert checker.parse(token, kind="verp") is None
    assert checker.token_id(token) == maker.token_id(token) is not None
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM issued_tokens")).scalar() == 1
    assert SqlTokenRegistry(engine).purge_expired(datetime.now(UTC) + timedelta(days=401)) == 1
    assert checker.parse(token) is None


def test_legacy_tokens_work_until_the_cut_off_on_installs_that_sent_mail(
        engine: Engine) -> None:
    config = alembic_config(engine)
    command.upgrade(config, "0004")
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO messages (id, created_at, state, sender, size, message_class,"
            " phi_verdict, phi_score, phi_categories, rule_hits, processing_errors, key_id,"
            " nonce) VALUES ('m1', '2026-11-01 00:00:00', 'done', 's@practice.test', 1,"
            " 'marketing', 'none', 0, '[]', '[]', 0, 'k', :nonce)"), {"nonce": b"\x00"})
    upgrade(engine)
    registry = SqlTokenRegistry(engine)
    until = registry.legacy_until()
    assert until is not None and until > datetime.now(UTC) + timedelta(days=399)
    old = legacy_token(TokenClaims("unsubscribe", PATIENT, campaign="flu-2026"))
    assert TokenSigner(KEY, registry).parse(old, kind="unsubscribe") == TokenClaims(
        "unsubscribe", PATIENT, campaign="flu-2026")
    assert TokenSigner(KEY, registry).parse(old, kind="verp") is None
    later = TokenSigner(KEY, registry, clock=lambda: until + timedelta(seconds=1))
    assert later.parse(old) is None


def test_a_fresh_install_never_accepts_address_bearing_tokens(engine: Engine) -> None:
    upgrade(engine)
    registry = SqlTokenRegistry(engine)
    assert registry.legacy_until() is None
    old = legacy_token(TokenClaims("unsubscribe", PATIENT))
    assert TokenSigner(KEY, registry).parse(old) is None
    assert not TokenSigner(KEY, registry).looks_genuine(old)


def _expiry(engine: Engine, token_id: str) -> datetime:
    with engine.connect() as connection:
        value = connection.execute(sa.text("SELECT expires_at FROM issued_tokens WHERE id = :i"),
                                   {"i": token_id}).scalar_one()
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def test_recording_a_known_token_again_extends_its_expiry_and_never_shortens_it(
        engine: Engine) -> None:
    upgrade(engine)
    claims = TokenClaims("verp", PATIENT)
    issued = datetime(2026, 12, 1, tzinfo=UTC)
    first, second = SqlTokenRegistry(engine), SqlTokenRegistry(engine)  # two nodes
    first.record("ab" * 9, claims, issued, issued + timedelta(days=60))
    second.record("ab" * 9, claims, issued + timedelta(days=5), issued + timedelta(days=65))
    assert _expiry(engine, "ab" * 9).replace(tzinfo=None) == datetime(2027, 2, 4)
    first.record("ab" * 9, claims, issued, issued + timedelta(days=60))  # an older issue
    assert _expiry(engine, "ab" * 9).replace(tzinfo=None) == datetime(2027, 2, 4)
    found = second.lookup("ab" * 9)
    assert found is not None and found[0] == claims


def test_tokens_recorded_while_a_commit_runs_share_the_next_one(engine: Engine) -> None:
    """Delivery threads record tokens at once: the records waiting behind a commit go in
    one transaction, and each ``record`` returns only once its row is committed."""
    upgrade(engine)
    registry = SqlTokenRegistry(engine)
    gate, first_commit = threading.Event(), threading.Event()
    commits: list[int] = []

    def on_commit(_connection: object) -> None:
        commits.append(1)
        if not first_commit.is_set():
            first_commit.set()
            assert gate.wait(30)

    sa.event.listen(engine, "commit", on_commit)
    seen: dict[int, bool] = {}
    now = datetime.now(UTC)

    def record(index: int) -> None:
        claims = TokenClaims("verp", f"patient{index}@example.org")
        registry.record(f"{index:018x}", claims, now, now + timedelta(days=60))
        seen[index] = registry.lookup(f"{index:018x}") is not None  # committed on return

    try:
        threads = [threading.Thread(target=record, args=(0,), daemon=True)]
        threads[0].start()
        assert first_commit.wait(30)
        threads += [threading.Thread(target=record, args=(i,), daemon=True)
                    for i in range(1, 7)]
        for thread in threads[1:]:
            thread.start()
        while registry._records.waiting < 6:
            threading.Event().wait(0.01)
        assert not seen  # nobody returned before its commit
        gate.set()
        for thread in threads:
            thread.join(30)
    finally:
        sa.event.remove(engine, "commit", on_commit)
    assert seen == dict.fromkeys(range(7), True)
    assert len(commits) == 2  # seven tokens, two transactions
