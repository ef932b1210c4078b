"""Operator actions from any screen: role check, typed confirmation, service call, notice.

A viewer's attempt is refused (and audited) before any dialog opens. An operator confirms in
a :class:`ConfirmDialog` (or gives a reason in a :class:`ReasonDialog` where one is recorded:
releasing quarantined mail, rejecting it, revealing clear text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual.screen import Screen

from phigate.admin import AccessDenied, ActionOutcome, AdminService
from phigate.admin_tui.widgets.dialogs import ConfirmDialog, ReasonDialog
from phigate.errors import PhigateError


@dataclass(frozen=True)
class ActionSpec:
    audit_name: str
    question: str
    #: "none": yes/no; "optional"/"required": a reason dialog.
    reason: str = "none"


SPECS = {
    "retry": ActionSpec("queue.retry", "Retry {what} now?"),
    "hold": ActionSpec("queue.hold", "Hold {what}? Why (optional):", "optional"),
    "release": ActionSpec("queue.release", "Release {what}?"),
    "release-quarantine": ActionSpec(
        "queue.release", "Release {what} from quarantine? It may carry PHI. Reason:",
        "required"),
    "delete": ActionSpec("queue.delete",
                         "Delete {what}? Delivery stops and the body is destroyed."),
    "bounce": ActionSpec("queue.bounce", "Bounce {what} back to the sender?"),
    "reject": ActionSpec("quarantine.reject", "Reject {what} (bounce to the sender)? Reason:",
                         "required"),
}


def _call(service: AdminService, kind: str, ids: list[str], reason: str | None
          ) -> list[ActionOutcome]:
    if kind == "retry":
        return service.retry(ids)
    if kind == "hold":
        return service.hold(ids, reason=reason or None)
    if kind in ("release", "release-quarantine"):
        return service.release(ids, reason=reason or None)
    if kind == "delete":
        return service.delete(ids)
    if kind == "bounce":
        return service.bounce(ids)
    if kind == "reject":
        return service.reject_quarantined(ids, reason=reason or "")
    raise ValueError(kind)


def request_action(screen: Screen[None], service: AdminService, kind: str,
                   message_ids: Sequence[str], *, done: Callable[[], None]) -> None:
    ids = list(dict.fromkeys(message_ids))
    if not ids:
        screen.notify("no message selected", severity="warning", markup=False)
        return
    spec = SPECS[kind]
    try:
        service.require_operator(spec.audit_name, ids)
    except AccessDenied as error:
        screen.notify(str(error), title="Refused", severity="error", markup=False)
        return
    what = f"message {ids[0]}" if len(ids) == 1 else f"{len(ids)} messages"
    question = spec.question.format(what=what)

    def perform(reason: str | None) -> None:
        try:
            outcomes = _call(service, kind, ids, reason)
        except PhigateError as error:
            screen.notify(str(error), severity="error", markup=False)
            return
        failed = [o for o in outcomes if not o.ok]
        for outcome in failed:
            screen.notify(outcome.detail, severity="error", markup=False)
        if len(failed) < len(outcomes):
            done_count = len(outcomes) - len(failed)
            detail = outcomes[0].detail if len(outcomes) == 1 else f"{done_count} done"
            screen.notify(f"{kind}: {detail}", title="Done", markup=False)
        done()

    if spec.reason == "none":
        screen.app.push_screen(ConfirmDialog(question),
                               lambda yes: perform(None) if yes else None)
    else:
        screen.app.push_screen(
            ReasonDialog(question, required=spec.reason == "required"),
            lambda reason: perform(reason) if reason is not None else None)
