"""One place queues a report of ours (issue 12): every DSN, delay, review and TLS report
goes through :func:`phigate.mta.delivery.reports.queue_report`, which keeps a report about
PHI mail under the PHI rules (the TLS PHI needs)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from phigate.mta.delivery.reports import queue_report
from phigate.queue.models import Message, MessageState
from phigate.runtime import Runtime

PACKAGE = Path(__file__).resolve().parents[3] / "phigate"


def test_a_report_about_phi_keeps_the_phi_rules(runtime: Runtime) -> None:
    queue_store = runtime.store
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    about_phi = queue_report(queue_store, recipients=["ehr@practice.test"], body=b"a\r\n\r\nb",
                             phi=True, now=now)
    plain = queue_report(queue_store, recipients=["ehr@practice.test"], body=b"a\r\n\r\nb",
                         phi=False, now=now)
    with queue_store.reading() as session:
        rows = {m.id: m for m in session.scalars(select(Message))}
    for queue_id, phi in ((about_phi, True), (plain, False)):
        row = rows[queue_id]
        assert (row.sender, row.message_class, row.state) == ("", "operations",
                                                             MessageState.ACTIVE)
        assert row.phi is phi and row.created_at.replace(tzinfo=UTC) == now


def test_no_other_module_builds_a_null_sender_message() -> None:
    """A report built by hand could forget the PHI verdict (and go out over plain TLS)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "reports.py" and path.parent.name == "delivery":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "NewMessage"
                    and any(k.arg == "sender" and isinstance(k.value, ast.Constant)
                            and k.value.value == "" for k in node.keywords)):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []
