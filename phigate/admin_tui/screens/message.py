"""One message: envelope, verdict and rule hits, recipients, attempts with TLS, and a
redacted preview. The clear text is shown only after a reason is given; that is audited."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from phigate.admin import MessageDetail
from phigate.admin.preview import Preview
from phigate.admin_tui.operations import request_action
from phigate.admin_tui.screens.base import AdminScreen
from phigate.admin_tui.widgets.dialogs import ReasonDialog
from phigate.admin_tui.widgets.format import age
from phigate.errors import PhigateError
from phigate.queue.models import MessageState


class MessageScreen(AdminScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("v", "reveal", "Reveal text"),
        Binding("r", "act('retry')", "Retry"),
        Binding("h", "act('hold')", "Hold"),
        Binding("l", "act('release')", "Release"),
        Binding("j", "act('reject')", "Reject"),
        Binding("x", "act('delete')", "Delete"),
        Binding("b", "act('bounce')", "Bounce"),
    ]

    def __init__(self, message_id: str) -> None:
        super().__init__()
        self.message_id = message_id
        self.detail: MessageDetail | None = None

    def compose(self) -> ComposeResult:
        header, footer = self.chrome()
        yield header
        with VerticalScroll(id="message-body"):
            yield Static("", id="envelope", classes="panel", markup=False)
            yield Static("", id="decisions", classes="panel", markup=False)
            yield Static("", id="attempts", classes="panel", markup=False)
            yield Static("loading preview…", id="preview", classes="panel", markup=False)
        yield footer

    def on_mount(self) -> None:
        self.query_one("#envelope").border_title = f"Message {self.message_id}"
        self.query_one("#decisions").border_title = "Verdict and rule hits"
        self.query_one("#attempts").border_title = "Recipients and attempts"
        self.query_one("#preview").border_title = "Preview (redacted)"
        self.load()

    def load(self) -> None:
        detail = self.guarded(lambda: self.service.message(self.message_id))
        if detail is None:
            return
        self.detail = detail
        view, now = detail.view, self.service.clock()
        state = f"{view.state}" + (f": {view.hold_reason}" if view.hold_reason else "")
        self.query_one("#envelope", Static).update("\n".join([
            f"state     {state}",
            f"received  {view.created_at:%Y-%m-%d %H:%M:%S} UTC ({age(view.created_at, now)} ago)"
            f" from {view.username or '-'} {view.client_ip or ''}".rstrip(),
            f"sender    {view.sender or '<>'}",
            f"class     {view.message_class}"
            + (f"  campaign {view.campaign_id}" if view.campaign_id else "")
            + f"  size {view.size}",
        ]))
        hits = [f"{h.get('rule', '?')}: {h.get('action', '')} - {h.get('reason', '')}"
                for h in view.rule_hits] or ["no rule hits"]
        categories = ", ".join(view.phi_categories) or "none"
        self.query_one("#decisions", Static).update(
            f"PHI verdict {view.phi_verdict} (categories: {categories})\n" + "\n".join(hits))
        lines = [f"{r.address}  {r.state}  attempts {r.attempts}"
                 + (f"  last {r.last_code or ''} {r.last_text or ''}".rstrip()
                    if r.last_code or r.last_text else "")
                 for r in view.recipients]
        for a in detail.attempts:
            tls = (f"{a.tls_version} {'verified' if a.cert_verified else 'unverified'}"
                   if a.tls_version else "no TLS")
            if a.tls_policy:
                tls = f"policy {a.tls_policy}, {tls}"
            lines.append(f"  {a.started_at:%m-%d %H:%M} {a.recipient} via {a.host or '-'}: "
                         f"{a.code or '-'} {a.text or ''} [{tls}]")
        lines += [f"  pickup {e['at']} {e['action'].removeprefix('pickup_')} "
                  f"from {e['ip'] or '-'}" for e in detail.pickup_events]
        self.query_one("#attempts", Static).update("\n".join(lines))
        if view.purged:
            self.query_one("#preview", Static).update("body destroyed (purged)")
        else:
            self._preview()

    def _preview(self) -> None:
        preview = self.guarded(lambda: self.service.preview(self.message_id))
        if preview is not None:
            self.show_preview(preview)

    def show_preview(self, preview: Preview) -> None:
        widget = self.query_one("#preview", Static)
        widget.border_title = "Preview (redacted)" if preview.redacted else "CLEAR TEXT (audited)"
        widget.set_class(not preview.redacted, "revealed")
        widget.update(preview.render() or "(no text)")

    def action_back(self) -> None:
        self.dismiss(None)

    def action_reveal(self) -> None:
        try:
            self.service.require_operator("message.reveal", [self.message_id])
        except PhigateError as error:
            self.notify(str(error), title="Refused", severity="error", markup=False)
            return

        def reveal(reason: str | None) -> None:
            if reason is None:
                return
            preview = self.guarded(lambda: self.service.reveal(self.message_id, reason=reason))
            if preview is not None:
                self.show_preview(preview)

        self.app.push_screen(ReasonDialog(
            "Show the clear text? It may contain PHI; your name and reason are recorded."),
            reveal)

    def action_act(self, kind: str) -> None:
        if kind == "release" and self.detail and \
                self.detail.view.state == MessageState.QUARANTINED:
            kind = "release-quarantine"
        request_action(self, self.service, kind, [self.message_id], done=self.load)
