"""MIME to text segments to PHI findings. Only this package imports spaCy.

``from phigate.phi_scanner import Scanner`` is cheap: the recognizers, vocabularies and the
spaCy model load when a :class:`Scanner` is constructed (in each worker of a
:class:`ScannerPool`), so the relay and the CLI start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from phigate.phi_scanner.findings import Finding, ScanResult, redact

if TYPE_CHECKING:
    from phigate.phi_scanner.pool import ScannerPool
    from phigate.phi_scanner.scanner import Scanner

__all__ = ["Finding", "ScanResult", "Scanner", "ScannerPool", "redact"]


def __getattr__(name: str) -> Any:
    if name == "Scanner":
        from phigate.phi_scanner.scanner import Scanner

        return Scanner
    if name == "ScannerPool":
        from phigate.phi_scanner.pool import ScannerPool

        return ScannerPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
