"""Hand-built hostile messages: the shapes fuzzers rarely stumble on by chance."""

from __future__ import annotations

import io
import zipfile
import zlib
from email.message import EmailMessage

PHI_LINE = b"Dear John Smith, your HbA1c for type 2 diabetes mellitus was 9.1%."


def nested_multipart(depth: int) -> bytes:
    head, tail = b"", b""
    for level in range(depth):
        head += (b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n'
                 % (level, level))
        tail = b"\r\n--b%d--\r\n" % level + tail
    return (b"From: a@practice.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + head
            + b"Content-Type: text/plain\r\n\r\n" + PHI_LINE + tail)


def nested_rfc822(depth: int) -> bytes:
    inner = b"Subject: innermost\r\nContent-Type: text/plain\r\n\r\n" + PHI_LINE + b"\r\n"
    for _ in range(depth):
        inner = b"Content-Type: message/rfc822\r\n\r\n" + inner
    return b"From: a@practice.test\r\nMIME-Version: 1.0\r\n" + inner


def with_attachment(data: bytes, maintype: str, subtype: str, filename: str) -> bytes:
    message = EmailMessage()
    message["From"] = "a@practice.test"
    message["Subject"] = "attached"
    message.set_content("See attached.")
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def docx_bomb(megabytes: int) -> bytes:
    """A .docx (a zip) whose document.xml inflates ~1000x."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
            '2006/content-types"><Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.openxml'
            'formats-officedocument.wordprocessingml.document.main+xml"/></Types>'))
        archive.writestr("_rels/.rels", (
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
            'openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            'Target="word/document.xml"/></Relationships>'))
        archive.writestr("word/document.xml", (
            '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
            'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>'
            + " " * (megabytes << 20) + "x</w:t></w:r></w:p></w:body></w:document>"))
    return buffer.getvalue()


def zip_bomb(megabytes: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("records.txt", b"0" * (megabytes << 20))
    return buffer.getvalue()


def pdf_flate_bomb(megabytes: int) -> bytes:
    """One page whose content stream inflates from ~200 KB to ``megabytes``."""
    stream = zlib.compress(b"0" * (megabytes << 20), 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream
        + b"\nendstream",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return out


def plain(headers: bytes, body: bytes) -> bytes:
    return b"From: a@practice.test\r\n" + headers + b"\r\n" + body


HOSTILE: dict[str, bytes] = {
    "nested-multipart-100": nested_multipart(100),
    "nested-rfc822-200": nested_rfc822(200),
    "many-parts-5000": (
        b'From: a@practice.test\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n'
        + b"".join(b"--x\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i
                   for i in range(5000)) + b"--x--\r\n"),
    "boundary-never-closed": (
        b'From: a@practice.test\r\nContent-Type: multipart/mixed; boundary="open"\r\n\r\n'
        b"--open\r\nContent-Type: text/plain\r\n\r\n" + PHI_LINE),
    "multipart-without-boundary": plain(b"Content-Type: multipart/mixed\r\n", PHI_LINE),
    "line-1MB-no-newline": plain(b"Subject: long\r\n", b"A" * (1 << 20)),
    "lines-of-5000-chars": plain(b"Subject: long\r\n", (b"B" * 5000 + b"\r\n") * 50),
    "header-line-2000-chars": plain(b"Subject: " + b"S" * 2000 + b"\r\nX-Long: "
                                    + b"x" * 998 + b"\r\n", PHI_LINE),
    "8bit-headers": plain(b"Subject: Ergebnisse f\xfcr Herrn M\xfcller \xff\xfe\r\n"
                          b"X-\xe4\xf6\xfc: \x80\x81\x82\r\n", PHI_LINE),
    "broken-rfc2047": plain(b"Subject: =?utf-8?b?!!!notbase64?= =?x-bogus?q?=ZZ?= "
                            b"=?utf-8?q?=E2=82?=\r\n", PHI_LINE),
    "unknown-charset": plain(b"Content-Type: text/plain; charset=x-no-such-charset\r\n",
                             PHI_LINE),
    "utf16-odd-bytes": plain(b"Content-Type: text/plain; charset=utf-16\r\n",
                             b"\xff\xfeA\x00B"),
    "broken-base64": plain(b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
                           b"SGVsbG8@@@===!!!\r\nnot base64 at all\r\n" + PHI_LINE),
    "broken-quoted-printable": plain(
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n",
        b"=ZZ=\r\n=E2=8\r\n" + PHI_LINE),
    "unknown-transfer-encoding": plain(
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode-ish\r\n", PHI_LINE),
    "html-script-soup": plain(b"Content-Type: text/html\r\n",
                              b"<html><script>" + b"<" * 20000 + b"</script><p>" + PHI_LINE
                              + b"<div>" * 20000),
    "base64-garbage-pdf": with_attachment(b"%PDF-1.7\n" + bytes(range(256)) * 100,
                                          "application", "pdf", "report.pdf"),
    "docx-bomb-100MB": with_attachment(
        docx_bomb(100), "application",
        "vnd.openxmlformats-officedocument.wordprocessingml.document", "letter.docx"),
    "zip-bomb-200MB": with_attachment(zip_bomb(200), "application", "zip", "records.zip"),
    "pdf-flate-bomb-200MB": with_attachment(pdf_flate_bomb(200), "application", "pdf",
                                            "scan.pdf"),
    # Past the 2 MB text cap (which must say so), and NER over all of it would blow the limit.
    # Plain lower-case words: text dense with findings is DENSE_ADDRESSES' case below.
    "text-attachment-3MB": with_attachment(
        b"the quick brown fox jumps over the lazy dog again\n" * 60_000, "text", "plain",
        "notes.txt"),
    "nul-and-control-bytes": plain(b"Subject: \x00\x01\x02\r\n", b"\x00" * 1000 + PHI_LINE),
    "empty": b"",
    "headers-only-no-blank-line": b"From: a@practice.test\r\nSubject: nothing",
}

#: ~170 KB of text dense with findings (24,000 of them). The overlap resolution was
#: quadratic in the number of findings (~16 s for this, minutes at the 2 MB text cap) before
#: b6c0a32 made it a bisection per finding; this is its regression input.
DENSE_FINDINGS = (b"From: a@practice.test\r\nSubject: x\r\n\r\n"
                  + b"Consectetur Adipiscing, 5914 Mill Road, Dayton, OH 45402\r\n" * 3000)

#: Known to raise from ``Scanner.scan_message`` (caught by the pool as "unscannable").
DEEP_NESTING = nested_multipart(3000)
