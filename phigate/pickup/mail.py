"""The mail secure pickup sends: the notice, the code mail, and the recipient's reply.

The notice and the code mail never carry PHI: no subject, body or attachment name of the
original, not even the recipient's address in the text. They are ordinary messages in the
queue, so delivery signs them with DKIM like any other.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

#: Marks mail that pickup itself generated (stripped on the way out like every X-Phigate-*).
GENERATED_HEADER = "X-Phigate-Pickup"


@dataclass(frozen=True)
class Practice:
    name: str
    address: str  # From: of the notice and the code mail
    hostname: str  # for Message-ID


def notice(practice: Practice, *, to: str, link: str, expires: datetime,
           now: datetime) -> bytes:
    when = expires.strftime("%-d %B %Y")
    name = practice.name
    text = (f"{name} has sent you a secure message.\n\n"
            "It is waiting for you on their secure website, because your email provider "
            "could not receive it over a protected connection.\n\n"
            f"Open it here:\n{link}\n\n"
            "You will be asked for a one-time code that we email to you separately.\n\n"
            f"The message can be opened until {when}.\n\n"
            f"If you did not expect this, you can ignore it or contact {name}.\n")
    e = html.escape
    body = (f"<p>{e(name)} has sent you a secure message.</p>"
            "<p>It is waiting for you on their secure website, because your email provider "
            "could not receive it over a protected connection.</p>"
            f'<p><a href="{e(link)}">Open the secure message</a></p>'
            "<p>You will be asked for a one-time code that we email to you separately.</p>"
            f"<p>The message can be opened until {e(when)}.</p>"
            f"<p>If you did not expect this, you can ignore it or contact {e(name)}.</p>")
    message = _base(practice, to=to, subject=f"A secure message from {name} is waiting",
                    now=now, kind="notice")
    message.set_content(text)
    message.add_alternative(_html_page(body), subtype="html")
    return message.as_bytes(policy=SMTP)


def code_mail(practice: Practice, *, to: str, code: str, now: datetime) -> bytes:
    text = (f"Your one-time code for the secure message from {practice.name}:\n\n"
            f"    {code}\n\n"
            "It is valid for 10 minutes. Nobody from the practice will ask you for it.\n")
    message = _base(practice, to=to, subject=f"Your code for {practice.name}", now=now,
                    kind="code")
    message.set_content(text)
    return message.as_bytes(policy=SMTP)


def reply(*, patient: str, sender: str, to: str, subject: str, text: str,
          in_reply_to: str | None, hostname: str, now: datetime) -> bytes:
    """The recipient's reply. From: is the practice's own address (so it passes SPF, DKIM
    and DMARC as ours; we must not send as the patient's domain), Reply-To: the patient."""
    message = EmailMessage()
    message["From"] = f'"{patient} via secure pickup" <{sender}>'
    message["Reply-To"] = patient
    message["To"] = to
    message["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=hostname)
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message[GENERATED_HEADER] = "reply"
    message.set_content(text)
    return message.as_bytes(policy=SMTP)


def _base(practice: Practice, *, to: str, subject: str, now: datetime,
          kind: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{practice.name} <{practice.address}>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=practice.hostname)
    message["Auto-Submitted"] = "auto-generated"
    message[GENERATED_HEADER] = kind
    return message


def _html_page(body: str) -> str:
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"></head>'
            f'<body style="font-family:sans-serif">{body}</body></html>')
