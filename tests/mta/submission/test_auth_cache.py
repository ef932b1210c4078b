"""The verified-password cache: one scrypt check per user and password for a while, never a
stored password, and no delay for removals, disabling or password changes."""

from __future__ import annotations

from unittest import mock

import pytest
from sqlalchemy import update

from phigate.accounts import store as accounts
from phigate.accounts.passwords import hash_password
from phigate.accounts.store import AccountStore, VerifiedPasswords
from phigate.queue.models import User
from phigate.runtime import Runtime


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(runtime: Runtime, clock: FakeClock) -> AccountStore:
    store = AccountStore(runtime.engine,
                         verified=VerifiedPasswords(ttl_seconds=60, max_entries=2, clock=clock))
    store.add("clinic", "correct horse", senders=["practice.test"], classes=["treatment"])
    return store


def counting_checks() -> mock._patch[mock.MagicMock]:
    return mock.patch.object(accounts, "verify_password", wraps=accounts.verify_password)


def test_second_login_skips_the_password_hash_until_the_entry_expires(
    store: AccountStore, clock: FakeClock,
) -> None:
    with counting_checks() as checks:
        assert store.authenticate("clinic", "correct horse") is not None
        assert store.authenticate("clinic", "correct horse") is not None
        assert checks.call_count == 1
        clock.now += 61
        assert store.authenticate("clinic", "correct horse") is not None
        assert checks.call_count == 2


def test_wrong_passwords_are_always_checked_and_never_remembered(store: AccountStore) -> None:
    assert store.authenticate("clinic", "correct horse") is not None
    with counting_checks() as checks:
        for _ in range(3):
            assert store.authenticate("clinic", "wrong horse") is None
        assert checks.call_count == 3
    assert len(store.verified) == 1


def test_removal_disabling_and_password_change_take_effect_at_once(
    store: AccountStore, runtime: Runtime,
) -> None:
    assert store.authenticate("clinic", "correct horse") is not None
    with store._sessions.begin() as session:
        session.execute(update(User).where(User.name == "clinic").values(disabled=True))
    assert store.authenticate("clinic", "correct horse") is None
    with store._sessions.begin() as session:
        session.execute(update(User).where(User.name == "clinic").values(
            disabled=False, password_hash=hash_password("new battery")))
    assert store.authenticate("clinic", "correct horse") is None
    assert store.authenticate("clinic", "new battery") is not None
    store.remove("clinic")
    assert store.authenticate("clinic", "new battery") is None


def test_bounded_and_holds_no_password(store: AccountStore) -> None:
    store.add("portal", "portal secret", senders=["practice.test"], classes=["treatment"])
    store.add("ehr", "ehr secret", senders=["practice.test"], classes=["treatment"])
    for name, password in [("clinic", "correct horse"), ("portal", "portal secret"),
                           ("ehr", "ehr secret")]:
        assert store.authenticate(name, password) is not None
    assert len(store.verified) == 2  # max_entries: the oldest went
    held = b"".join(store.verified._expiry)
    for secret in (b"correct horse", b"portal secret", b"ehr secret"):
        assert secret not in held
    with counting_checks() as checks:
        store.authenticate("clinic", "correct horse")  # evicted: checked again
        store.authenticate("ehr", "ehr secret")  # still remembered
        assert checks.call_count == 1
