"""``phigate report --month``: the monthly compliance report as JSON, HTML and PDF.

The PDF is rendered by WeasyPrint and read back with poppler's ``pdftotext``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from phigate.admin.retention import PURGE_ACTION
from phigate.audit.log import Actor
from phigate.cli.main import main
from phigate.policy.campaigns import CampaignStore
from phigate.policy.open_tracking import FetchKind, OpenStore
from phigate.queue.models import Attempt, AuditEvent, Message, MessageState, Recipient
from phigate.queue.policy_models import BounceIncident, Campaign, Suppression
from phigate.runtime import Runtime

from .test_cli import config  # noqa: F401  (fixture)

Enqueue = Callable[..., str]
NOV = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
PATIENTS = ("pat.smith@example.org", "jo.doe@example.net", "lee@clinic.example")


def _age(moment: datetime) -> timedelta:
    return datetime.now(UTC) - moment


def _delivered(runtime: Runtime, message_id: str, **tls: object) -> None:
    with runtime.store.writing() as session:
        for recipient in session.scalars(select(Recipient).where(
                Recipient.message_id == message_id)):
            session.add(Attempt(recipient_id=recipient.id, message_id=message_id,
                                started_at=NOV + timedelta(minutes=1), code=250, text="ok",
                                **tls))


def _seed(runtime: Runtime, enqueue: Enqueue) -> None:
    lab = enqueue(PATIENTS[0], message_class="treatment", phi_verdict="phi",
                  phi_categories=["MRN"], age=_age(NOV))
    _delivered(runtime, lab, tls_policy="dane", tls_version="TLSv1.3", cert_verified=True)
    second = enqueue(PATIENTS[1], message_class="treatment", phi_verdict="phi", age=_age(NOV))
    _delivered(runtime, second, tls_policy="verify", tls_version="TLSv1.3", cert_verified=True)
    enqueue(PATIENTS[2], message_class="operations", age=_age(NOV))
    held = enqueue(PATIENTS[2], message_class="marketing", campaign_id="flu", phi_verdict="phi",
                   state=MessageState.QUARANTINED, age=_age(NOV),
                   rule_hits=[{"rule": "phi-in-marketing", "action": "quarantine",
                               "reason": "PHI in marketing"}])
    released = enqueue(PATIENTS[0], message_class="treatment", phi_verdict="phi",
                       state=MessageState.QUARANTINED, age=_age(NOV),
                       rule_hits=[{"rule": "email-phi-consent", "action": "quarantine",
                                   "reason": "no email_phi consent"}])
    enqueue(PATIENTS[1], message_class="treatment", age=_age(NOV + timedelta(days=40)))
    with runtime.store.writing() as session:
        session.get(Message, released).state = MessageState.ACTIVE  # type: ignore[union-attr]
        session.add(Suppression(address=PATIENTS[1], scope="marketing", kind="unsubscribe",
                                reason="unsubscribe (one-click)", source="one-click",
                                created_at=NOV))
        session.add(BounceIncident(domain="bigmail.example", reason="blocked", first_seen=NOV,
                                   last_seen=NOV + timedelta(hours=3), count=7,
                                   hold_until=NOV + timedelta(hours=4)))
    CampaignStore(runtime.engine, runtime.audit, runtime.settings.policy).approve(
        "flu", actor=Actor("olga", "192.0.2.4"), now=NOV)
    opens = OpenStore(runtime.store)
    for n, kind in enumerate((FetchKind.OPEN, FetchKind.OPEN, FetchKind.OPEN, FetchKind.PROXY)):
        opens.record("flu", bytes([n]) * 10, kind, now=NOV)
    runtime.audit.record(Actor("otto", "192.0.2.9"), "queue.release", message_id=released)
    runtime.audit.record(Actor("otto", "192.0.2.9"), "message.reveal", message_id=held)
    runtime.audit.record(Actor("phigate"), PURGE_ACTION, detail={"bodies_destroyed": 12,
                                                            "messages_removed": 3})
    with runtime.store.writing() as session:  # entries dated into November
        for event in session.scalars(select(AuditEvent)):
            event.at = NOV + timedelta(hours=5)
    # The hashes cover `at`: re-dating entries breaks the chain, so re-chain for the test.
    _rechain(runtime)


def _rechain(runtime: Runtime) -> None:
    from phigate.audit.log import GENESIS_HASH, entry_hash

    with runtime.store.writing() as session:
        previous = GENESIS_HASH
        for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
            event.prev_hash = previous
            event.hash = entry_hash(previous, event.at, event.actor, event.actor_ip,
                                    event.action, event.message_id, event.detail)
            previous = event.hash
            if event.action == "campaign.approve":  # the approval carries its entry's hash
                session.execute(update(Campaign).where(
                    Campaign.id == event.detail["campaign"]).values(audit_hash=event.hash))


def _report(config: Path, tmp_path: Path, fmt: str) -> Path:  # noqa: F811
    out = tmp_path / f"report.{fmt}"
    assert main(["--config", str(config), "report", "--month", "2026-11", "--format", fmt,
                 "--out", str(out)]) == 0
    return out


def test_json_report_counts_the_month_and_names_no_patient(
        config: Path, runtime: Runtime, enqueue: Enqueue, tmp_path: Path) -> None:  # noqa: F811
    _seed(runtime, enqueue)
    text = _report(config, tmp_path, "json").read_text()
    report = json.loads(text)
    assert report["messages"]["by_class"] == {"marketing": 1, "operations": 1, "treatment": 3}
    assert report["messages"]["with_phi"] == 4 and report["messages"]["phi_share"] == 0.8
    assert report["phi_tls"] == {"dane": 1, "mta-sts": 0, "verified": 1, "encrypted": 0,
                                 "none": 0}
    assert report["quarantine"] == {
        "total": 2, "by_reason": {"email-phi-consent": 1, "phi-in-marketing": 1},
        "outcomes": {"released": 1, "still held": 1}}
    assert report["suppressions"]["by_source"] == {"unsubscribe (marketing)": 1}
    [campaign] = report["campaigns"]
    assert (campaign["id"], campaign["approved_by"], campaign["approved_ip"]) == (
        "flu", "olga", "192.0.2.4")
    assert campaign["estimated_opens"] == {"unique_opens": 3, "proxy_fetches": 1,
                                           "tracking_closed": False}
    assert [i["domain"] for i in report["incidents"]] == ["bigmail.example"]
    assert report["audit"]["phi_reveals_by_admin"] == {"otto": 1}
    assert report["audit_chain"]["ok"] is True
    assert report["retention"]["runs"] == 1 and report["retention"]["bodies_destroyed"] == 12
    assert not any(patient in text for patient in PATIENTS) and "@" not in text


def test_pdf_report_renders_and_its_text_reads_back(
        config: Path, runtime: Runtime, enqueue: Enqueue, tmp_path: Path) -> None:  # noqa: F811
    _seed(runtime, enqueue)
    pdf = _report(config, tmp_path, "pdf")
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "phigate compliance report 2026-11" in text
    assert "Messages by class" in text and "TLS that PHI left with" in text
    assert "phi-in-marketing" in text and "olga" in text and "192.0.2.4" in text
    assert "Audit chain" in text and "verified:" in text and "BROKEN" not in text
    assert "Counts only" in text
    assert "(estimated)" in text and "3 (+1 proxy)" in text and "proxy prefetches" in text
    assert not any(patient in text for patient in PATIENTS) and "@" not in text


def test_html_report_escapes_and_a_bad_month_is_one_line(
        config: Path, runtime: Runtime, enqueue: Enqueue, tmp_path: Path,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    _seed(runtime, enqueue)
    html = _report(config, tmp_path, "html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<h2>9. Audit chain</h2>" in html
    assert main(["--config", str(config), "report", "--month", "2026-13"]) == 1
    assert "phigate: error: --month: not a month (YYYY-MM)" in capsys.readouterr().err
