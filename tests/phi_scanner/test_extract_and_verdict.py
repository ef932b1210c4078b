"""Extraction from MIME, the verdict, redaction and the JSON shape."""

from __future__ import annotations

import io
from email.message import EmailMessage

import docx
import pytest
from pypdf import PdfWriter

from phigate.config import ScannerSettings
from phigate.phi_scanner import Finding, ScanResult, redact
from phigate.phi_scanner.extract import IMAGE_NOTE, Limits, extract_message


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with a real text layer (Helvetica), built by hand."""
    stream = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
              .encode())
    return out.getvalue()


def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def message(body: str, subject: str = "Hello", html: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "clinic@example.org"
    msg["To"] = "someone@example.net"
    msg["Subject"] = subject
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def test_subject_body_html_and_attachments_are_extracted():
    msg = message("Plain body", subject="Results for Maria Lopez",
                  html="<html><head><style>.x{color:red}</style></head><body><p>Hi</p>"
                       "<script>var ssn='123-45-6788';</script><p>HTML body</p></body></html>")
    msg.add_attachment(minimal_pdf("Patient: John Smith"), maintype="application",
                       subtype="pdf", filename="letter.pdf")
    msg.add_attachment(docx_bytes("Diagnosis: asthma"), maintype="application",
                       subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
                       filename="note.docx")
    msg.add_attachment(b"name,dob\nAna,1/2/1950\n", maintype="text", subtype="csv",
                       filename="list.csv")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n....", maintype="image", subtype="png",
                       filename="face.png")
    extraction = extract_message(msg.as_bytes(), Limits())
    parts = {segment.part: segment.text for segment in extraction.segments}
    assert parts["subject"] == "Results for Maria Lopez"
    assert parts["body"].strip() == "Plain body"
    assert "HTML body" in parts["body[2]"] and "123-45" not in parts["body[2]"]
    assert "color" not in parts["body[2]"]
    assert "Patient: John Smith" in parts["attachment:1"]
    assert "Diagnosis: asthma" in parts["attachment:2"]
    assert "1/2/1950" in parts["attachment:3"]
    assert extraction.notes == [IMAGE_NOTE]


def test_encrypted_and_unknown_attachments_are_unscannable_without_names(auto_scanner):
    msg = message("See attached.")
    msg.add_attachment(encrypted_pdf(), maintype="application", subtype="pdf",
                       filename="Maria Lopez labs.pdf")
    msg.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream",
                       filename="Maria Lopez.bin")
    result = auto_scanner.scan_message(msg.as_bytes())
    assert result.verdict == "phi"  # fail closed
    assert result.unscannable
    assert any("encrypted PDF" in note for note in result.notes)
    assert not any("Maria" in note for note in result.notes)  # file names may be PHI


def test_text_size_limit_is_a_note():
    msg = message("x" * 5000)
    extraction = extract_message(msg.as_bytes(), Limits(max_text_chars=1000))
    assert sum(len(s.text) for s in extraction.segments) <= 1000
    assert "unscannable: text size limit reached" in extraction.notes


def test_garbage_input_gives_a_result(auto_scanner):
    result = auto_scanner.scan_message(b"\xff\xfe\x00garbage without headers")
    assert result.verdict in ("none", "identifiers", "phi")


def test_verdicts(auto_scanner):
    phi = auto_scanner.scan_message(message(
        "Dear Maria Lopez,\nYour A1c was 8.2% and we will increase your metformin.\n").as_bytes())
    assert phi.verdict == "phi"
    assert {"PERSON", "LAB_RESULT", "MEDICATION"} <= set(phi.categories)
    identifiers = auto_scanner.scan_message(message(
        "Hi Maria Lopez,\nthanks for volunteering at the 5K run!\n").as_bytes())
    assert identifiers.verdict == "identifiers"
    newsletter = auto_scanner.scan_message(message(
        "Dear Patients,\nFlu season is here and heart disease is preventable. Our office is "
        "closed on July 4.\n--\nRiverside Family Medicine, 12 Main Street, Springfield, IL "
        "62704\nPhone (217) 555-0100\n").as_bytes())
    assert newsletter.verdict != "phi"
    nothing = auto_scanner.scan_message(message("see you there\n").as_bytes())
    assert nothing.verdict == "none" and nothing.findings == []


def test_strong_identifier_in_clinical_context_is_phi(auto_scanner):
    result = auto_scanner.scan_text("MRN 00482913 - follow-up for hypertension")
    assert result.verdict == "phi"


def test_thresholds_come_from_settings():
    from phigate.phi_scanner import Scanner

    strict = Scanner(ScannerSettings(ner="never", phi_threshold=0.99))
    assert strict.scan_text("Dear Maria Lopez, your metformin is ready.").verdict == "identifiers"


def test_redact_replaces_findings_and_merges_overlaps():
    text = "Dear Maria Lopez, DOB 03/14/1951."
    findings = [Finding("PERSON", "Maria Lopez", 5, 16, "t", 0.9, "salutation"),
                Finding("DATE", "03/14/1951", 22, 32, "t", 0.9, "date of birth"),
                Finding("PERSON", "Lopez", 11, 16, "t", 0.7, "NER person")]
    assert redact(text, findings) == "Dear [PERSON], DOB [DATE]."


def test_scan_result_json_shape():
    result = ScanResult("phi", 0.7, ["PERSON"],
                        [Finding("PERSON", "Maria", 5, 10, "body", 0.85, "salutation")], [])
    shown = result.to_json(include_text=True)
    assert set(shown) >= {"verdict", "score", "categories", "findings"}
    assert set(shown["findings"][0]) >= {"category", "text", "start", "end", "part",
                                         "confidence"}
    assert "Maria" not in str(result.to_json(include_text=False))


def test_simple_headers_are_never_parsed_and_the_others_once_per_message(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The email package's default policy parses a header again on every read (Content-Type
    # some twenty times per part): that was most of a short message's scan (issue 16). A
    # simple value's text is written without the header parser (test_mime_headers.py).
    from email.headerregistry import HeaderRegistry

    parses: list[str] = []
    original = HeaderRegistry.__call__

    def counting(self: HeaderRegistry, name: str, value: str) -> object:
        parses.append(name.lower())
        return original(self, name, value)

    monkeypatch.setattr(HeaderRegistry, "__call__", counting)

    def built(subject: str, filename: str) -> bytes:
        message = EmailMessage()
        message["Subject"] = subject
        message.set_content("Dear Ms. Okafor,\n\nyour results are in.\n")
        message.add_alternative("<p>Dear Ms. Okafor,</p><p>your results are in.</p>",
                                subtype="html")
        message.add_attachment(b"date,time\n2026-03-01,09:00\n", maintype="text",
                               subtype="csv", filename=filename)
        return bytes(message)  # serialising parses headers too

    simple, encoded = built("Your visit", "visits.csv"), built("Ihr Befund: R\u00e9sultats",
                                                                 "r\u00e9sultats.csv")
    for raw in (simple, encoded):
        parses.clear()
        extraction = extract_message(raw, Limits())
        assert [s.part for s in extraction.segments] == ["subject", "body", "body[2]",
                                                         "attachment:1"]
        if raw is simple:
            assert parses == []
        else:
            # an RFC 2047 subject and an RFC 2231 file name: parsed, once each
            assert extraction.segments[0].text == "Ihr Befund: R\u00e9sultats"
            assert sorted(parses) == ["content-disposition", "subject"]


def test_a_finding_is_still_a_frozen_dataclass() -> None:
    # Finding writes its fields itself (the generated frozen __init__ cost 4x, issue 16).
    import dataclasses
    import pickle

    finding = Finding("PERSON", "Maria", 5, 10, "body", 0.85, "salutation")
    same = Finding(category="PERSON", text="Maria", start=5, end=10, part="body",
                   confidence=0.85, reason="salutation")
    assert finding == same and hash(finding) == hash(same)
    assert pickle.loads(pickle.dumps(finding)) == finding  # noqa: S301 - our own bytes
    assert dataclasses.replace(finding, start=6).start == 6
    assert dataclasses.astuple(finding) == ("PERSON", "Maria", 5, 10, "body", 0.85,
                                            "salutation")
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.start = 6  # type: ignore[misc]
