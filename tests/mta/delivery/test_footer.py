"""The visible marketing footer: text and HTML parts, encodings kept, attachments untouched."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy

import dkim

from phigate.mta.delivery.dkim import DkimSigner, dns_record, generate_key
from phigate.mta.delivery.footer import add_footer

URL = "https://relay.practice.test/u/abc234"
ADDRESS = "Springfield Family Practice, 12 Elm St, Springfield, IL 62701"
TEXT = "Unsubscribe: {unsubscribe_url}"
HTML_B64 = base64.encodebytes(b"<html><body><p>Flu shots & more</p></body></html>")
PDF_B64 = base64.encodebytes(b"%PDF-1.4 not text")
MULTIPART = (
    b"From: news@practice.test\r\nTo: fan@example.org\r\nSubject: Flu shots\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"OUT\"\r\n\r\n"
    b"--OUT\r\nContent-Type: multipart/alternative; boundary=\"ALT\"\r\n\r\n"
    b"--ALT\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nFlu shots =E2=80=93 book now\r\n"
    b"--ALT\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
    b"\r\n" + HTML_B64.replace(b"\n", b"\r\n") + b"--ALT--\r\n"
    b"--OUT\r\nContent-Type: text/plain; name=\"notes.txt\"\r\n"
    b"Content-Disposition: attachment; filename=\"notes.txt\"\r\n\r\nleave me alone\r\n"
    b"--OUT\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + PDF_B64.replace(b"\n", b"\r\n") + b"--OUT--\r\n")


def _parts(message: bytes) -> dict[str, str]:
    parsed = message_from_bytes(message, policy=policy.default)
    found = {}
    for part in parsed.walk():
        if part.is_multipart():
            continue
        name = part.get_filename() or part.get_content_type()
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found[name] = payload.decode("utf-8", "replace")
    return found


def test_text_and_html_parts_get_the_link_and_address_in_their_own_encoding() -> None:
    out = add_footer(MULTIPART, text=TEXT, unsubscribe_url=URL, postal_address=ADDRESS)
    parts = _parts(out)
    assert parts["text/plain"].startswith("Flu shots \u2013 book now")
    assert parts["text/plain"].endswith(f"-- \r\nUnsubscribe: {URL}\r\n{ADDRESS}\r\n")
    html = parts["text/html"]
    assert html.startswith("<html><body><p>Flu shots & more</p>")
    assert f'<a href="{URL}">{URL}</a>' in html and html.endswith("</div></body></html>")
    assert parts["notes.txt"] == "leave me alone"  # an attachment is not ours to edit
    assert parts["application/pdf"].startswith("%PDF-1.4")
    assert out.split(b"\r\n\r\n")[0] == MULTIPART.split(b"\r\n\r\n")[0]  # header block kept
    assert b"Content-Transfer-Encoding: quoted-printable\r\n\r\nFlu shots =E2=80=93" in out


def test_wording_is_configurable_and_the_address_is_escaped_in_html() -> None:
    out = add_footer(MULTIPART, text="Abmelden hier \u2192 {unsubscribe_url}",
                     unsubscribe_url=URL, postal_address="Dr. <Smith> & Partners")
    parts = _parts(out)
    assert f"Abmelden hier \u2192 {URL}" in parts["text/plain"]
    assert "Dr. &lt;Smith&gt; &amp; Partners" in parts["text/html"]


def test_a_signature_made_after_the_footer_verifies() -> None:
    key = generate_key("rsa")
    signer = DkimSigner(domains=["practice.test"], selector="s1", rsa_key=key)
    signed = signer.sign(add_footer(MULTIPART, text=TEXT, unsubscribe_url=URL,
                                    postal_address=ADDRESS))
    record = dns_record(key, "rsa").encode()
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
    assert URL in _parts(signed)["text/plain"]


def test_a_message_without_text_parts_is_unchanged() -> None:
    only_pdf = (b"From: a@practice.test\r\nMIME-Version: 1.0\r\n"
                b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + PDF_B64)
    assert add_footer(only_pdf, text=TEXT, unsubscribe_url=URL,
                      postal_address=ADDRESS) == only_pdf
