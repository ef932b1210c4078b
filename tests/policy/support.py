"""Helpers of the policy tests: a relay handle, a fixed scanner, one SMTP session."""

from __future__ import annotations

import dataclasses
import ssl
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from phigate.audit.log import Actor
from phigate.config import Settings
from phigate.phi_scanner import ScanResult
from phigate.policy.consent import ConsentChange
from phigate.policy.stores import PolicyStores
from phigate.serve import RunningServices

ADMIN = Actor("alice", "192.0.2.7")
PASSWORD = "correct horse"


class FixedScanner:
    """Stands in for the scanner pool: every message gets the same verdict."""

    def __init__(self, result: ScanResult) -> None:
        self.result = result

    async def scan(self, content: bytes) -> ScanResult:
        return self.result


PHI_RESULT = ScanResult(verdict="phi", score=0.9, categories=["diagnosis", "name"],
                        findings=[])


@dataclasses.dataclass
class PolicyRelay:
    settings: Settings
    running: RunningServices
    stores: PolicyStores

    @property
    def runtime(self) -> Any:
        return self.running.runtime

    def use_scanner(self, result: ScanResult | None) -> None:
        assert self.running.submission is not None
        self.running.submission.scanner = FixedScanner(result) if result else None  # type: ignore[assignment]

    def grant(self, address: str, purpose: str = "marketing") -> None:
        self.stores.consents.apply(ConsentChange(address, purpose, source="test"), actor=ADMIN)


@dataclasses.dataclass
class SessionResult:
    rcpt: dict[str, tuple[int, str]]
    data: tuple[int, str] | None

    @property
    def queued_id(self) -> str:
        assert self.data is not None and self.data[0] == 250, self.data
        return self.data[1].rsplit(" ", 1)[1]


def mail(*, to: str = "patient@example.org", message_class: str | None = None,
         campaign: str | None = None, sender: str = "news@practice.test",
         **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "From your practice"
    if message_class:
        message["X-Phigate-Class"] = message_class
    if campaign:
        message["X-Phigate-Campaign"] = campaign
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Hello from the practice.\n")
    return message


async def submit(relay: PolicyRelay, client_tls: ssl.SSLContext, message: EmailMessage,
                 recipients: list[str], *, user: str = "clinic") -> SessionResult:
    """One real SMTP session: every RCPT reply, and the DATA reply if a recipient passed."""
    port = relay.settings.submission.listen.port
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=client_tls,
                             start_tls=True, timeout=15)
    await client.connect()
    try:
        await client.login(user, PASSWORD)
        await client.mail(str(message["From"]).split("<")[-1].strip(">"))
        replies: dict[str, tuple[int, str]] = {}
        for recipient in recipients:
            try:
                response = await client.rcpt(recipient)
                replies[recipient] = (response.code, response.message)
            except aiosmtplib.SMTPRecipientRefused as refused:
                replies[recipient] = (refused.code, refused.message)
        data = None
        if any(code == 250 for code, _ in replies.values()):
            try:
                response = await client.data(message.as_bytes())
                data = (response.code, response.message)
            except aiosmtplib.SMTPDataError as refused:
                data = (refused.code, refused.message)
        return SessionResult(replies, data)
    finally:
        await client.quit()
