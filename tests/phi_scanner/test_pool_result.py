"""What a scan through the pool hands back: the in-process verdict, without the findings.

The relay decides on the verdict, score, categories and notes; the findings carry the
matched text (PHI) and were most of the bytes crossing the pipe (issue 16), so they stay in
the worker unless asked for.
"""

from __future__ import annotations

from email.message import EmailMessage

from phigate.config import ScannerSettings
from phigate.phi_scanner import Scanner, ScannerPool


def _message(body: str, html: str) -> bytes:
    message = EmailMessage()
    message["From"] = "nurse@practice.example.org"
    message["To"] = "patient@example.net"
    message["Subject"] = "Your results"
    message.set_content(body)
    message.add_alternative(html, subtype="html")
    return bytes(message)


MESSAGES = [
    _message("Dear Ms. Okafor,\n\nyour biopsy on 03/14/2026 showed melanoma. Call "
             "555-201-3344.\n", "<p>Dear Ms. Okafor,</p><p>call 555-201-3344</p>"
             + "<tr><td>Portal: https://portal.practice.test</td></tr>" * 20),
    _message("Clinic hours change next week.\n", "<p>Clinic hours change next week.</p>"),
    b"\x00\xff not a message",
]


async def test_the_pool_gives_the_in_process_verdict_and_no_findings_unless_asked() -> None:
    settings = ScannerSettings(ner="never", workers=1)
    alone = [Scanner(settings).scan_message(raw) for raw in MESSAGES]
    pool = ScannerPool(settings)
    try:
        slim = [await pool.scan(raw) for raw in MESSAGES]
        full = [await pool.scan(raw, with_findings=True) for raw in MESSAGES]
    finally:
        pool.close(graceful=False)
    assert alone[0].verdict == "phi" and len(alone[0].findings) > 20
    assert alone[1].verdict == "none"
    for expected, summary, whole in zip(alone, slim, full, strict=True):
        assert whole == expected
        assert summary.findings == []
        assert (summary.verdict, summary.score, summary.categories, summary.notes) == (
            expected.verdict, expected.score, expected.categories, expected.notes)
