"""The admin service on SQLite and PostgreSQL: listing, actions with their audit, roles."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from phigate.admin import AccessDenied, AdminService, QueueFilter
from phigate.admin.actions import ActionRefused
from phigate.errors import UserError
from phigate.queue.crypto import DecryptionError
from phigate.queue.models import Message, MessageState, RecipientState
from phigate.runtime import Runtime

from .conftest import GROUP_VIEWER, OPERATOR, STRANGER, VIEWER

Enqueue = Callable[..., str]


def last_audit(runtime: Runtime) -> dict[str, Any]:
    return runtime.audit.entries(limit=1)[0]


def test_keyset_pages_walk_every_row_once_both_ways(operator: AdminService,
                                                    enqueue: Enqueue) -> None:
    for index in range(23):
        enqueue(f"a{index}@one.example", f"b{index}@two.example")
    seen: list[int] = []
    pages = []
    page = operator.page(QueueFilter(), limit=10)
    while True:
        pages.append(page)
        seen += [row.recipient_id for row in page.rows]
        if page.next_after is None:
            break
        page = operator.page(QueueFilter(), after=page.next_after, limit=10)
    assert len(seen) == 46 == len(set(seen)) == operator.count(QueueFilter())
    assert seen == sorted(seen)
    assert [len(p.rows) for p in pages] == [10, 10, 10, 10, 6]
    assert pages[0].prev_before is None
    back = operator.page(QueueFilter(), before=pages[-1].prev_before, limit=10)
    assert [r.recipient_id for r in back.rows] == [r.recipient_id for r in pages[-2].rows]


def test_filters_by_domain_state_sender_class_and_age(operator: AdminService,
                                                      enqueue: Enqueue) -> None:
    old = enqueue("x@old.example", age=timedelta(hours=3), sender="portal@practice.test")
    enqueue("y@new.example", message_class="marketing")
    held = enqueue("z@new.example")
    operator.hold([held])
    assert {r.message_id for r in operator.page(QueueFilter(domain="OLD.example")).rows} == {old}
    assert {r.message_id for r in
            operator.page(QueueFilter(older_than=timedelta(hours=1))).rows} == {old}
    assert {r.message_id for r in operator.page(QueueFilter(sender="PORTAL")).rows} == {old}
    assert [r.message_class for r in
            operator.page(QueueFilter(message_class="marketing")).rows] == ["marketing"]
    assert {r.message_id for r in operator.page(QueueFilter(state="held")).rows} == {held}
    assert operator.count(QueueFilter(state="delivered")) == 0
    # A class that does not exist is the user's typo, said as such (the column is an enum).
    with pytest.raises(UserError, match="unknown class 'marketting'"):
        QueueFilter(message_class="marketting")


def test_hold_release_retry_are_applied_and_audited(operator: AdminService, enqueue: Enqueue,
                                                    runtime: Runtime) -> None:
    message_id = enqueue("pat@example.org")
    [outcome] = operator.hold([message_id], reason="checking with the doctor")
    assert outcome.ok
    assert runtime.store.get_message(message_id).state == MessageState.HELD
    entry = last_audit(runtime)
    assert (entry["action"], entry["actor"], entry["actor_ip"], entry["message_id"]) == (
        "queue.hold", "otto", "203.0.113.7", message_id)
    assert entry["detail"] == {"reason": "checking with the doctor"}

    [refused] = operator.retry([message_id])
    assert not refused.ok and "release it first" in refused.detail

    [released] = operator.release([message_id])
    assert released.ok and runtime.store.get_message(message_id).state == MessageState.ACTIVE
    assert last_audit(runtime)["action"] == "queue.release"

    [retried] = operator.retry([message_id])
    assert retried.ok and retried.detail == "1 recipient(s) due now"
    assert last_audit(runtime)["action"] == "queue.retry"


def test_delete_cancels_and_destroys_the_body_but_keeps_the_envelope(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    message_id = enqueue("pat@example.org", "kim@example.org")
    [outcome] = operator.delete([message_id])
    assert outcome.ok
    view = runtime.store.get_message(message_id)
    assert view.state == MessageState.DONE and view.purged
    assert {r.state for r in view.recipients} == {RecipientState.CANCELLED}
    with pytest.raises(DecryptionError):
        runtime.store.read_body(message_id)
    entry = last_audit(runtime)
    assert entry["action"] == "queue.delete" and entry["detail"]["cancelled"] == 2
    assert operator.count(QueueFilter()) == 0


def test_bounce_fails_recipients_and_queues_a_dsn_to_the_sender(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    message_id = enqueue("pat@example.org")
    [outcome] = operator.bounce([message_id])
    assert outcome.ok
    view = runtime.store.get_message(message_id)
    assert [r.state for r in view.recipients] == [RecipientState.BOUNCED]
    with runtime.store.writing() as session:
        dsn = session.scalars(select(Message).where(Message.sender == "")).one()
        dsn_id = dsn.id
    assert [r.address for r in runtime.store.get_message(dsn_id).recipients] == [
        "desk@practice.test"]
    report = runtime.store.read_body(dsn_id)
    assert b"multipart/report" in report and b"MRN 48213977" not in report
    assert "pat@example.org" not in str(last_audit(runtime))


def test_quarantine_release_needs_a_reason_which_is_recorded(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    message_id = enqueue("pat@example.org", state=MessageState.QUARANTINED,
                         phi_verdict="phi", hold_reason="PHI in marketing mail")
    assert [item.message_id for item in operator.quarantine()] == [message_id]
    [refused] = operator.release([message_id])
    assert not refused.ok and "needs a reason" in refused.detail
    assert runtime.store.get_message(message_id).state == MessageState.QUARANTINED
    [released] = operator.release([message_id], reason="patient asked for it by phone")
    assert released.ok
    entry = last_audit(runtime)
    assert entry["detail"] == {"from_state": "quarantined", "phi_verdict": "phi",
                               "reason": "patient asked for it by phone"}


def test_quarantine_reject_bounces_with_the_reason_audited(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    message_id = enqueue("pat@example.org", state=MessageState.QUARANTINED)
    with pytest.raises(ActionRefused):
        operator.reject_quarantined([message_id], reason="  ")
    [outcome] = operator.reject_quarantined([message_id], reason="PHI in a newsletter")
    assert outcome.ok
    assert runtime.store.get_message(message_id).state == MessageState.DONE
    entry = last_audit(runtime)
    assert (entry["action"], entry["detail"]["reason"]) == (
        "quarantine.reject", "PHI in a newsletter")


def test_unknown_id_is_reported_and_the_others_still_done(
        operator: AdminService, enqueue: Enqueue) -> None:
    message_id = enqueue("pat@example.org")
    outcomes = operator.hold(["NOPE", message_id])
    assert [(o.message_id, o.ok) for o in outcomes] == [("NOPE", False), (message_id, True)]
    assert outcomes[0].detail == "no message NOPE"


@pytest.mark.parametrize("identity", [VIEWER, GROUP_VIEWER], ids=["user", "group"])
def test_a_viewer_may_look_but_not_act_and_the_attempt_is_audited(
        make_service: Callable[..., AdminService], enqueue: Enqueue, runtime: Runtime,
        identity: object) -> None:
    message_id = enqueue("pat@example.org")
    viewer = make_service(identity)
    assert viewer.count(QueueFilter()) == 1
    assert viewer.message(message_id).view.id == message_id
    with pytest.raises(AccessDenied, match="not in \\[admin\\] operators"):
        viewer.hold([message_id])
    assert runtime.store.get_message(message_id).state == MessageState.ACTIVE
    entry = last_audit(runtime)
    assert (entry["action"], entry["message_id"], entry["detail"]) == (
        "action.denied", message_id, {"action": "queue.hold", "role": "viewer"})
    with pytest.raises(AccessDenied):
        viewer.reveal(message_id)


def test_someone_in_neither_list_may_not_even_look(
        make_service: Callable[..., AdminService], runtime: Runtime) -> None:
    stranger = make_service(STRANGER)
    with pytest.raises(AccessDenied, match="mallory may not run queue.list"):
        stranger.page(QueueFilter())
    entry = last_audit(runtime)
    assert (entry["actor"], entry["action"], entry["detail"]["role"]) == (
        "mallory", "action.denied", "none")


def test_preview_is_redacted_and_reveal_is_audited(
        operator: AdminService, viewer: AdminService, enqueue: Enqueue,
        runtime: Runtime) -> None:
    message_id = enqueue("pat@example.org")
    preview = viewer.preview(message_id).render()
    assert "48213977" not in preview and "555-201-7788" not in preview
    assert "your MRN [MEDICAL_RECORD_NUMBER] results are ready. Call [PHONE_NUMBER]." in preview
    audit_before = len(runtime.audit.entries())
    clear = operator.reveal(message_id, reason="sender asked what was sent").render()
    assert "48213977" in clear
    entry = last_audit(runtime)
    assert (entry["action"], entry["message_id"], entry["actor"]) == (
        "message.reveal", message_id, OPERATOR.user)
    assert "48213977" not in str(entry)
    assert len(runtime.audit.entries()) == audit_before + 1


def test_shape_buckets_pending_recipients_by_domain_and_age(
        make_service: Callable[..., AdminService], enqueue: Enqueue) -> None:
    enqueue("a@one.example", "b@one.example")
    enqueue("c@one.example", age=timedelta(minutes=30))
    enqueue("d@two.example", age=timedelta(days=2))
    shape = make_service(OPERATOR, now=datetime.now(UTC)).shape()
    assert shape.total.total == 4
    one, two = shape.domains
    assert (one.domain, one.total, one.buckets[0], one.buckets[3]) == ("one.example", 3, 2, 1)
    assert (two.domain, two.buckets[-1]) == ("two.example", 1)
