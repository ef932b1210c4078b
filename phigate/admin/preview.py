"""Message previews for admins: redacted by default, clear text only on an audited reveal.

The redacted preview runs the PHI scanner over the same text segments the relay scanned and
replaces every finding with ``[CATEGORY]``. If scanning fails the preview shows nothing
rather than unredacted text (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from phigate.config import ScannerSettings
from phigate.phi_scanner import redact
from phigate.phi_scanner.extract import Limits, extract_message

if TYPE_CHECKING:
    from phigate.phi_scanner.scanner import Scanner

log = logging.getLogger(__name__)

#: Characters shown per part; a preview is for judging a message, not for reading it all.
PREVIEW_CHARS = 4000
UNAVAILABLE = "[preview unavailable: the scanner failed on this message]"

ScannerFactory = Callable[[ScannerSettings], "Scanner"]


@dataclass(frozen=True)
class PreviewPart:
    part: str
    text: str


@dataclass(frozen=True)
class Preview:
    message_id: str
    redacted: bool
    parts: list[PreviewPart]
    categories: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        blocks = [f"--- {part.part} ---\n{part.text}" for part in self.parts]
        blocks += [f"(note: {note})" for note in self.notes]
        return "\n\n".join(blocks)


def _default_factory(settings: ScannerSettings) -> Scanner:
    from phigate.phi_scanner import Scanner

    return Scanner(settings)


class Previewer:
    """Holds one scanner, built on first use (loading the NER model takes seconds)."""

    def __init__(self, settings: ScannerSettings,
                 scanner_factory: ScannerFactory | None = None) -> None:
        self._settings = settings
        self._factory = scanner_factory or _default_factory
        self._scanner: Scanner | None = None

    def _get_scanner(self) -> Scanner:
        if self._scanner is None:
            self._scanner = self._factory(self._settings)
        return self._scanner

    def redacted(self, message_id: str, raw: bytes) -> Preview:
        try:
            scanner = self._get_scanner()
            extraction = extract_message(raw, scanner.limits)
            result = scanner.scan_segments(extraction.segments, extraction.notes)
        except Exception as error:  # fail closed: no text rather than unredacted text
            log.warning("preview: scan failed message=%s error=%s", message_id,
                        type(error).__name__)
            return Preview(message_id, True, [PreviewPart("preview", UNAVAILABLE)])
        parts = [
            PreviewPart(segment.part, _clip(redact(
                segment.text, [f for f in result.findings if f.part == segment.part])))
            for segment in extraction.segments
        ]
        return Preview(message_id, True, parts, list(result.categories), list(result.notes))

    def clear(self, message_id: str, raw: bytes) -> Preview:
        extraction = extract_message(raw, Limits(max_text_chars=self._settings.max_text_bytes))
        parts = [PreviewPart(s.part, _clip(s.text)) for s in extraction.segments]
        return Preview(message_id, False, parts, [], list(extraction.notes))


def _clip(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "\n[…]"
