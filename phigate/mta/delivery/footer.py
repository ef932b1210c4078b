"""The visible footer of marketing mail: an unsubscribe link and the practice's postal
address, in every text/plain and text/html part (CAN-SPAM; Gmail and Yahoo's bulk-sender
rules ask for a visible link besides the one-click header).

The link carries the same signed token as ``List-Unsubscribe``; its page asks for a
confirmation (a GET never unsubscribes, link scanners fetch every URL). Only the text
parts are re-encoded, in their own transfer encoding; attachments and the header block
are left as they were. DKIM signs afterwards, so the signature covers the footer.
"""

from __future__ import annotations

import base64
import quopri
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from html import escape

_HTML_END = (b"</body>", b"</html>")


def footer_lines(text: str, unsubscribe_url: str, postal_address: str) -> list[str]:
    lines = [text.replace("{unsubscribe_url}", unsubscribe_url)]
    return lines + ([postal_address] if postal_address.strip() else [])


def _plain(lines: list[str]) -> str:
    return "\r\n\r\n-- \r\n" + "\r\n".join(lines) + "\r\n"


def _html(lines: list[str], unsubscribe_url: str, pixel_url: str | None = None) -> str:
    url = escape(unsubscribe_url)
    sentence = escape(lines[0]).replace(url, f'<a href="{url}">{url}</a>')
    address = "".join(f"<p>{escape(line)}</p>" for line in lines[1:])
    # The first-party open pixel (see phigate.policy.open_tracking): HTML parts only.
    pixel = (f'<img src="{escape(pixel_url)}" width="1" height="1" alt="" '
             'style="display:block;border:0">' if pixel_url else "")
    return (f'<div style="margin-top:2em;font-size:12px;color:#555"><p>{sentence}</p>'
            f"{address}{pixel}</div>")


def add_footer(message: bytes, *, text: str, unsubscribe_url: str, postal_address: str,
               pixel_url: str | None = None) -> bytes:
    """``message`` with the footer added to each inline text part; unchanged if it has none
    (or cannot be parsed: the delivery goes out as the application wrote it). ``pixel_url``
    (an opted-in campaign's open pixel) goes into the HTML parts' footer."""
    parsed = message_from_bytes(message, policy=compat32)
    lines = footer_lines(text, unsubscribe_url, postal_address)
    top_fields = parsed.items()
    changed = False
    for part in parsed.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if (part.get("Content-Disposition") or "").strip().lower().startswith("attachment"):
            continue
        subtype = part.get_content_subtype()
        if subtype == "plain":
            changed |= _append(part, _plain(lines), html=False)
        elif subtype == "html":
            changed |= _append(part, _html(lines, unsubscribe_url, pixel_url), html=True)
    if not changed:
        return message
    head_end = message.find(b"\r\n\r\n")
    rendered = parsed.as_bytes(policy=compat32.clone(linesep="\r\n"))
    if parsed.items() != top_fields:  # a single part whose charset or encoding changed
        return rendered
    # Keep the top-level header block byte for byte (phigate's added headers included).
    body_start = rendered.find(b"\r\n\r\n")
    if head_end < 0 or body_start < 0:
        return rendered
    return message[:head_end] + rendered[body_start:]


def _append(part: Message, addition: str, *, html: bool) -> bool:
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return False
    declared = part.get_content_charset()
    charset = declared or "us-ascii"
    try:
        content = raw.decode(charset)
    except (LookupError, UnicodeDecodeError):
        if declared:
            return False  # mislabelled text: better no footer than a garbled part
        charset, content = "utf-8", raw.decode("utf-8", "replace")
        part.set_param("charset", charset)
    if html:
        lowered = content.lower()
        end = min((i for i in (lowered.rfind(t.decode()) for t in _HTML_END) if i >= 0),
                  default=len(content))
        content = content[:end] + addition + content[end:]
    else:
        content = content.rstrip("\r\n") + addition
    try:
        encoded = content.encode(charset)
    except UnicodeEncodeError:
        charset, encoded = "utf-8", content.encode("utf-8")
        part.set_param("charset", charset)
    _set_encoded(part, encoded)
    return True


def _set_encoded(part: Message, data: bytes) -> None:
    encoding = (part.get("Content-Transfer-Encoding") or "7bit").strip().lower()
    if encoding == "base64":
        text = base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")
    elif encoding == "quoted-printable" or (encoding == "7bit" and not data.isascii()):
        text = quopri.encodestring(data.replace(b"\r\n", b"\n")).decode("ascii")
        text = text.replace("\n", "\r\n")
        if encoding != "quoted-printable":
            del part["Content-Transfer-Encoding"]
            part["Content-Transfer-Encoding"] = "quoted-printable"
    else:  # 7bit / 8bit / binary: the bytes as they are
        text = data.decode("ascii", "surrogateescape")  # the generator writes them back as-is
    part.set_payload(text)
