"""Suppressions and consent: search by address, add or lift a suppression, grant or revoke a
consent (each with a reason or evidence, recorded in the audit log), and an address's
consent history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from phigate.admin_tui.screens.policy_screen import PolicyScreen
from phigate.admin_tui.widgets.dialogs import ReasonDialog
from phigate.admin_tui.widgets.format import cells, clip
from phigate.policy.consent import PURPOSES, ConsentEntry
from phigate.policy.suppression import SCOPES, SuppressionEntry

SUPPRESSION_COLUMNS = ("Address", "Scope", "Kind", "Since", "Reason")
CONSENT_COLUMNS = ("Address", "Purpose", "State", "Updated", "Source", "Evidence")
#: Short names for the table; the history and the dialogs use the full purpose.
PURPOSE_LABELS = {"marketing": "marketing", "hipaa_marketing_authorization": "hipaa-auth",
                  "email_phi": "email-phi"}
STATE_STYLES = {"granted": "green", "expired": "yellow", "revoked": "red"}
#: Rows per list; a search narrows a longer list down.
LIMIT = 1000


@dataclass(frozen=True)
class FormAnswer:
    address: str
    choice: str
    text: str


class AddressForm(ModalScreen[FormAnswer | None]):
    """An address, one choice from a list and a required reason; None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, choices: Sequence[str], *, address: str = "",
                 text_label: str = "reason (recorded in the audit log)") -> None:
        super().__init__(classes="dialog")
        self._question = question
        self._choices = list(choices)
        self._address = address
        self._text_label = text_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box"):
            yield Label(self._question, id="question", markup=False)
            yield Input(self._address, placeholder="address", id="form-address")
            yield Select([(c, c) for c in self._choices], value=self._choices[0],
                         allow_blank=False, id="form-choice")
            yield Input(placeholder=self._text_label, id="form-text")
            with Horizontal(id="dialog-buttons"):
                yield Button("OK", variant="warning", id="ok")
                yield Button("Cancel", variant="primary", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#form-text" if self._address else "#form-address", Input).focus()

    def _submit(self) -> None:
        address = self.query_one("#form-address", Input).value.strip()
        text = self.query_one("#form-text", Input).value.strip()
        if "@" not in address:
            self.notify("an email address is required", severity="warning", markup=False)
            return
        if not text:
            self.notify(f"a {self._text_label.split(' (')[0]} is required",
                        severity="warning", markup=False)
            return
        choice = str(self.query_one("#form-choice", Select).value)
        self.dismiss(FormAnswer(address, choice, text))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "form-address":
            self.query_one("#form-choice", Select).focus()
        else:
            self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HistoryDialog(ModalScreen[None]):
    """Every grant and revocation of one address, oldest first; any of Escape/Enter closes."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, address: str, events: list[dict[str, object]]) -> None:
        super().__init__(classes="dialog")
        self._address = address
        self._events = events

    def compose(self) -> ComposeResult:
        lines = [f"{str(e['at'])[:16].replace('T', ' ')}  {e['action']:<6}  {e['purpose']}\n"
                 f"    by {e['actor']}  source {e['source']}"
                 + (f"  evidence {e['evidence']}" if e["evidence"] else "")
                 for e in self._events] or ["no consent recorded for this address"]
        with Vertical(id="dialog-box"):
            yield Label(f"Consent history of {self._address}", id="question", markup=False)
            yield Static("\n".join(lines), id="history", markup=False)
            yield Label("Escape: close", id="history-hint", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)


class SuppressionsScreen(PolicyScreen):
    BINDINGS = [
        Binding("a", "add", "Suppress"),
        Binding("x", "remove", "Lift"),
        Binding("c", "grant", "Grant"),
        Binding("v", "revoke", "Revoke"),
        Binding("slash", "search", "Search"),
        Binding("g", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.suppressions: list[SuppressionEntry] = []
        self.consents: list[ConsentEntry] = []

    def compose(self) -> ComposeResult:
        header, footer = self.chrome()
        yield header
        yield Input(placeholder="search by address or part of one (Enter)", id="address-search",
                    compact=True)
        suppressions: DataTable[Text] = DataTable(id="suppression-table", cursor_type="row",
                                                  zebra_stripes=True)
        yield suppressions
        consents: DataTable[Text] = DataTable(id="consent-table", cursor_type="row",
                                              zebra_stripes=True)
        yield consents
        yield Static("", id="suppression-status", markup=False)
        yield footer

    def on_mount(self) -> None:
        suppressions = self.table_with_columns("#suppression-table", SUPPRESSION_COLUMNS)
        suppressions.border_title = "Suppressions"
        self.table_with_columns("#consent-table", CONSENT_COLUMNS).border_title = "Consent"
        self.action_reload()
        suppressions.focus()

    @property
    def search_term(self) -> str:
        return self.query_one("#address-search", Input).value.strip()

    def action_search(self) -> None:
        self.query_one("#address-search", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_reload()
        self.query_one("#suppression-table", DataTable).focus()

    def action_reload(self) -> None:
        term = self.search_term or None
        suppressions = self.guarded(lambda: self.service.suppressions(term, limit=LIMIT))
        consents = self.guarded(lambda: self.service.consents(term, limit=LIMIT))
        if suppressions is None or consents is None:
            return
        self.suppressions, self.consents = suppressions, consents
        table = self.query_one("#suppression-table", DataTable)
        row = table.cursor_row
        table.clear()
        for s in suppressions:
            table.add_row(*cells(clip(s.address, 30), s.scope, s.kind,
                                 f"{s.created_at:%Y-%m-%d}", clip(s.reason, 40)))
        table.move_cursor(row=min(row, max(len(suppressions) - 1, 0)))
        now = self.service.clock()
        table = self.query_one("#consent-table", DataTable)
        row = table.cursor_row
        table.clear()
        for c in consents:
            state = "granted" if c.active(now) else "expired" if c.granted else "revoked"
            table.add_row(*cells(clip(c.address, 30), PURPOSE_LABELS.get(c.purpose, c.purpose)),
                          Text(state, style=STATE_STYLES[state]),
                          *cells(f"{c.updated_at:%Y-%m-%d}", clip(c.source, 16),
                                 clip(c.evidence, 30)))
        # After an action the cursor stays where it was, not back on the first row.
        table.move_cursor(row=min(row, max(len(consents) - 1, 0)))
        def count(found: int) -> str:
            return f"newest {found}" if found >= LIMIT else str(found)

        matching = f" matching {term!r}" if term else ""
        self.query_one("#suppression-status", Static).update(
            f"{count(len(suppressions))} suppression(s), {count(len(consents))} consent(s)"
            f"{matching}  -  Enter: history")

    def _selected_suppression(self) -> SuppressionEntry | None:
        row = self.query_one("#suppression-table", DataTable).cursor_row
        return self.suppressions[row] if row < len(self.suppressions) else None

    def _selected_consent(self) -> ConsentEntry | None:
        row = self.query_one("#consent-table", DataTable).cursor_row
        return self.consents[row] if row < len(self.consents) else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        entry = (self._selected_consent() if event.data_table.id == "consent-table"
                 else self._selected_suppression())
        if entry is None:
            return
        events = self.guarded(lambda: self.service.consent_history(entry.address))
        if events is not None:
            self.app.push_screen(HistoryDialog(entry.address, events))

    # -- acting -------------------------------------------------------------------------------

    def _typed_address(self) -> str:
        """The search term, when it is a whole address: the likely one to act on."""
        term = self.search_term
        return term if "@" in term.strip("@") else ""

    def action_add(self) -> None:
        if not self.may("suppression.add"):
            return

        def add(answer: FormAnswer | None) -> None:
            if answer is not None:
                self.perform(lambda: self._add(answer))

        self.app.push_screen(AddressForm(
            "Suppress an address. marketing: no marketing mail, reminders still go; "
            "all: no mail at all. Its queued mail in that scope is cancelled.",
            SCOPES, address=self._typed_address()), add)

    def _add(self, answer: FormAnswer) -> str:
        result = self.service.add_suppression(answer.address, answer.choice,
                                              reason=answer.text, source="tui")
        if not result.added:
            return f"{answer.address} was already suppressed ({answer.choice} or all)"
        cancelled = len(result.cancelled_messages)
        return (f"suppressed {answer.address} for {answer.choice} mail"
                + (f"; cancelled its copies in {cancelled} message(s)" if cancelled else ""))

    def action_remove(self) -> None:
        entry = self._selected_suppression()
        if entry is None or not self.may("suppression.remove"):
            return

        def remove(reason: str | None) -> None:
            if reason is not None:
                self.perform(lambda: self._remove(entry, reason))

        self.app.push_screen(ReasonDialog(
            f"Lift the {entry.scope} suppression of {entry.address}? Mail to it may go out "
            "again. Reason:"), remove)

    def _remove(self, entry: SuppressionEntry, reason: str) -> str:
        removed = self.service.remove_suppression(entry.address, scope=entry.scope,
                                                  reason=reason)
        return (f"lifted the {entry.scope} suppression of {entry.address}" if removed
                else f"{entry.address} was no longer suppressed")

    def action_grant(self) -> None:
        if not self.may("consent.grant"):
            return
        selected = self._selected_consent()
        address = self._typed_address() or (selected.address if selected else "")

        def grant(answer: FormAnswer | None) -> None:
            if answer is not None:
                self.perform(lambda: self._grant(answer))

        self.app.push_screen(AddressForm(
            "Record a consent. marketing: opt-in; hipaa_marketing_authorization: marketing "
            "that uses PHI; email_phi: PHI by email.", PURPOSES, address=address,
            text_label="evidence: form id, call note (recorded)"), grant)

    def _grant(self, answer: FormAnswer) -> str:
        self.service.grant_consent(answer.address, answer.choice, evidence=answer.text,
                                   source="tui")
        return f"granted {answer.choice} for {answer.address}"

    def action_revoke(self) -> None:
        entry = self._selected_consent()
        if entry is None or not self.may("consent.revoke"):
            return
        if not entry.granted:
            self.notify(f"{entry.purpose} of {entry.address} is already revoked", markup=False)
            return

        def revoke(evidence: str | None) -> None:
            if evidence is not None:
                self.perform(lambda: self._revoke(entry, evidence))

        self.app.push_screen(ReasonDialog(
            f"Revoke the {entry.purpose} consent of {entry.address}? Queued mail that needs it "
            "is cancelled. Evidence or reason:"), revoke)

    def _revoke(self, entry: ConsentEntry, evidence: str) -> str:
        cancelled = self.service.revoke_consent(entry.address, entry.purpose,
                                                evidence=evidence, source="tui")
        return (f"revoked {entry.purpose} for {entry.address}"
                + (f"; cancelled its copies in {len(cancelled)} message(s)" if cancelled
                   else ""))
