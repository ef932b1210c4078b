"""Small text helpers shared by the screens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text


def age(then: datetime, now: datetime) -> str:
    seconds = int((now - then).total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def seconds(value: float) -> str:
    if value <= 0:
        return "-"
    return age(datetime.fromtimestamp(0), datetime.fromtimestamp(value))


def clip(text: str | None, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def cells(*values: str) -> list[Text]:
    """Table cells as plain text: a ``[`` in an address or a reply is not markup."""
    return [Text(value, no_wrap=True) for value in values]


def clip_middle(text: str | None, width: int) -> str:
    """``text`` in ``width`` cells with an ellipsis in the middle: ids stay told apart by
    their random tails (a queue id starts with the arrival clock, shared by its neighbours)."""
    text = text or ""
    if len(text) <= width:
        return text
    head = max((width - 1) // 3, 1)
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


@dataclass(frozen=True)
class Column:
    """A table column: the width it wants, the narrowest it may get (its cells are then
    cut with an ellipsis; Enter shows them whole), and its turn when room is handed out."""

    title: str
    natural: int
    minimum: int
    priority: int = 9


def fit_columns(columns: Sequence[Column], width: int) -> list[int]:
    """Content widths for a table ``width`` cells wide (cell padding and a scrollbar
    allowed for): each column gets its minimum, then room goes to them by priority."""
    widths = [column.minimum for column in columns]
    spare = width - 2 * len(columns) - 2 - sum(widths)
    for index in sorted(range(len(columns)), key=lambda i: columns[i].priority):
        if spare <= 0:
            break
        grant = min(columns[index].natural - widths[index], spare)
        widths[index] += grant
        spare -= grant
    return widths
