"""A modal that shows one record whole (an audit entry, a clipped cell): Escape closes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class DetailDialog(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, title: str, lines: list[tuple[str, str]]) -> None:
        super().__init__(classes="dialog")
        self._title = title
        self._lines = lines

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog-box"):
            yield Label(self._title, id="question", markup=False)
            width = max((len(name) for name, _ in self._lines), default=0)
            text = "\n".join(f"{name:<{width}}  {value}" for name, value in self._lines)
            yield Static(text, id="detail-text", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
