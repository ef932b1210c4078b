"""Small text helpers shared by the screens."""

from __future__ import annotations

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
