"""Held mail grouped by why it is held, each group with the command that resolves it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

#: (label, what the reason text says, the fix), first match wins.
GROUPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("no email_phi consent", ("email_phi",),
     "phigate consent grant ADDRESS --purpose email_phi (or consent import FILE), "
     "then release"),
    ("PHI in marketing", ("marketing",),
     "remove the PHI and resend, or consent grant ADDRESS --purpose "
     "hipaa_marketing_authorization, then release"),
    ("unscannable", ("unscannable",),
     "review the message, then phigate queue release ID --reason R (or reject)"),
)
OTHER = ("other", "review the message, then phigate queue release ID --reason R (or reject)")


def group_of(reason: str) -> tuple[str, str]:
    lowered = reason.lower()
    for label, words, fix in GROUPS:
        if any(word in lowered for word in words):
            return label, fix
    return OTHER


def summary_lines(reasons: Iterable[str]) -> list[str]:
    counts: Counter[tuple[str, str]] = Counter(group_of(reason) for reason in reasons)
    return [f"{count} {label}: {fix}" for (label, fix), count in counts.most_common()]
