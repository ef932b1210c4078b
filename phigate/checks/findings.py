"""A finding of ``check-config``: one line that says what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TextIO


class Severity(StrEnum):
    ERROR = "error"  # the setup is unsafe or will not work: check-config exits 2
    WARNING = "warning"  # worth fixing; check-config still exits 0


@dataclass(frozen=True)
class Finding:
    severity: Severity
    subject: str  # the config key or DNS name concerned, e.g. "[submission] tls_cert"
    problem: str
    fix: str

    def line(self) -> str:
        return f"phigate: {self.severity}: {self.subject}: {self.problem}; fix: {self.fix}"

    def as_dict(self) -> dict[str, str]:
        return {"severity": str(self.severity), "subject": self.subject,
                "problem": self.problem, "fix": self.fix}


def error(subject: str, problem: str, fix: str) -> Finding:
    return Finding(Severity.ERROR, subject, problem, fix)


def warning(subject: str, problem: str, fix: str) -> Finding:
    return Finding(Severity.WARNING, subject, problem, fix)


def report(findings: Iterable[Finding], out: TextIO) -> int:
    """Print each finding on its own line; the exit status: 2 with errors, else 0."""
    status = 0
    for finding in findings:
        out.write(finding.line() + "\n")
        if finding.severity is Severity.ERROR:
            status = 2
    return status
