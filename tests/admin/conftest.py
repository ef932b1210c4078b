"""Admin fixtures: a service per role, and a queue seeded through the real store."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from phigate.admin import AdminService, Identity
from phigate.config import AdminSettings, ScannerSettings
from phigate.queue.store import NewMessage
from phigate.runtime import Runtime

ROLES = AdminSettings(viewers=["vera", "@auditors"], operators=["otto", "@mailops"])
OPERATOR = Identity("otto", frozenset({"staff"}), "203.0.113.7")
VIEWER = Identity("vera", frozenset({"staff"}))
GROUP_VIEWER = Identity("ann", frozenset({"auditors"}))
STRANGER = Identity("mallory", frozenset({"staff"}))

BODY = (b"From: Front Desk <desk@practice.test>\r\nTo: pat@example.org\r\n"
        b"Subject: Your visit\r\nMessage-ID: <m1@practice.test>\r\n\r\n"
        b"Dear patient, your MRN 48213977 results are ready. Call 555-201-7788.\r\n")


@functools.cache
def fast_scanner(settings: ScannerSettings) -> object:
    """The real scanner without the NER model (recognizers only), built once per session."""
    from phigate.phi_scanner import Scanner

    return Scanner(dataclasses.replace(settings, ner="never"))


@pytest.fixture
def make_service(runtime: Runtime) -> Callable[..., AdminService]:
    def make(identity: Identity = OPERATOR, *, now: datetime | None = None) -> AdminService:
        settings = dataclasses.replace(runtime.settings, admin=ROLES)
        clock = (lambda: now) if now is not None else None
        kwargs = {"clock": clock} if clock else {}
        return AdminService(runtime.store, runtime.audit, settings, identity=identity,
                            scanner_factory=fast_scanner, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def operator(make_service: Callable[..., AdminService]) -> AdminService:
    return make_service(OPERATOR)


@pytest.fixture
def viewer(make_service: Callable[..., AdminService]) -> AdminService:
    return make_service(VIEWER)


@pytest.fixture
def enqueue(runtime: Runtime) -> Callable[..., str]:
    def put(*recipients: str, sender: str = "desk@practice.test", body: bytes = BODY,
            age: timedelta = timedelta(0), **fields: object) -> str:
        now = datetime.now(UTC) - age
        return runtime.store.enqueue(
            NewMessage(sender=sender, recipients=list(recipients or ["pat@example.org"]),
                       body=body, **fields),  # type: ignore[arg-type]
            now=now)

    return put


@pytest.fixture(autouse=True)
def no_auto_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Screens reload themselves every few seconds; on a loaded machine a reload in the middle
    of a test or snapshot would race it. Tests of the refresh turn it back on."""
    from phigate.admin_tui.screens.campaigns import CampaignsScreen
    from phigate.admin_tui.screens.queue import QueueScreen

    monkeypatch.setattr(QueueScreen, "REFRESH_SECONDS", None)
    monkeypatch.setattr(CampaignsScreen, "REFRESH_SECONDS", None)
