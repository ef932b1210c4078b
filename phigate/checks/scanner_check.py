"""Is the PHI scanner usable? For ``check-config`` (loads it) and ``serve`` (refuses to start
without it; issue 14 item 7: a missing spaCy model used to start, report healthy and
quarantine every message as unscannable)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from phigate.config.sections import ScannerSettings
from phigate.errors import ConfigError

if TYPE_CHECKING:
    from phigate.phi_scanner import ScannerPool

PROBE = b"Subject: phigate scanner check\r\n\r\nscanner check\r\n"


def model_missing(settings: ScannerSettings) -> ConfigError | None:
    """The error for a model that is neither an installed package nor a directory (found
    without importing spaCy)."""
    if not settings.enabled or settings.ner == "never":
        return None
    name = settings.model
    if Path(name).is_dir():
        return None
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    return ConfigError(f"[scanner] model: the spaCy model {name!r} is not installed (install "
                       "its package, or set [scanner] ner = \"never\" to scan without NER)")


def load_scanner(settings: ScannerSettings) -> None:
    """Load the lexicons and the model as a worker would; ConfigError (one line) if not."""
    missing = model_missing(settings)
    if missing is not None:
        raise missing
    if not settings.enabled:
        return
    from phigate.phi_scanner.scanner import Scanner

    try:
        Scanner(settings).scan_message(PROBE)
    except (OSError, RuntimeError, ValueError) as error:
        raise ConfigError(f"[scanner]: the scanner cannot load ({type(error).__name__}: "
                          f"{error})") from None


async def probe(pool: ScannerPool) -> str | None:
    """None if the pool scans; else why not (the reason of an unscannable probe)."""
    result = await pool.scan(PROBE)
    notes = [note for note in result.notes if note.startswith("unscannable")]
    return notes[0] if notes else None
