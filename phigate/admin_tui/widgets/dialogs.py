"""Typed modal dialogs: a yes/no confirmation, and a confirmation that needs a reason."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class ConfirmDialog(ModalScreen[bool]):
    """Dismisses with True only on an explicit "yes" (button or ``y``); Escape means no."""

    BINDINGS = [Binding("escape,n", "answer(False)", "No"), Binding("y", "answer(True)", "Yes")]

    def __init__(self, question: str, *, yes: str = "Yes") -> None:
        super().__init__(classes="dialog")
        self._question = question
        self._yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box"):
            yield Label(self._question, id="question", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button(self._yes, variant="warning", id="yes")
                yield Button("No", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # the safe answer is the default

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class ReasonDialog(ModalScreen[str | None]):
    """Asks for the reason to record; None when cancelled. An empty reason is not accepted."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, *, required: bool = True) -> None:
        super().__init__(classes="dialog")
        self._question = question
        self._required = required

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box"):
            yield Label(self._question, id="question", markup=False)
            yield Input(placeholder="reason (recorded in the audit log)", id="reason")
            with Horizontal(id="dialog-buttons"):
                yield Button("OK", variant="warning", id="ok")
                yield Button("Cancel", variant="primary", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def _submit(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if self._required and not reason:
            self.notify("a reason is required", severity="warning", markup=False)
            return
        self.dismiss(reason)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
