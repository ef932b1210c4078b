"""The pickup page's HTML: plain forms, no JavaScript, one inline stylesheet allowed by hash.

Every page says who sent the message; nothing here loads anything from anywhere.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape

from phigate.pickup.content import Shown

STYLE = ("body{font-family:system-ui,sans-serif;max-width:46rem;margin:0 auto;padding:1rem;"
         "line-height:1.5;color:#1b1b1b}header{border-bottom:2px solid #245;margin-bottom:1rem}"
         "input,textarea,button{font-size:1.1rem;width:100%;box-sizing:border-box;"
         "padding:.6rem;margin:.3rem 0 .8rem}button{background:#245;color:#fff;border:0;"
         "border-radius:.3rem}pre{white-space:pre-wrap;word-wrap:break-word;"
         "background:#f4f4f4;padding:.8rem}.note{color:#555;font-size:.9rem}"
         ".err{color:#a00;font-weight:bold}table{border-collapse:collapse}"
         "th{text-align:left;padding-right:1rem;vertical-align:top}"
         ".html{border:1px solid #ccc;padding:.8rem;overflow-wrap:anywhere}")
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


def layout(practice: str, title: str, body: str) -> str:
    p = escape(practice)
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)} - {p}</title><style>{STYLE}</style></head><body>"
            f"<header><p><strong>{p}</strong> - secure message</p></header>"
            f"<main><h1>{escape(title)}</h1>{body}</main>"
            f'<footer><p class="note">{p} sent you this message through its own secure '
            "website, because your email provider could not receive it over a protected "
            "connection. Nobody else can read it here.</p></footer></body></html>")


def invalid(practice: str) -> str:
    return layout(practice, "Link not valid", (
        "<p>This link is not valid, or the message it pointed to has expired and was "
        "deleted.</p><p>Please ask the sender to send it again.</p>"))


def code_form(practice: str, token: str, *, question: str | None, sent: bool,
              error: str = "") -> str:
    base = f"/p/{escape(token)}"
    parts = [f'<p class="err">{escape(error)}</p>' if error else "",
             f"<p>{escape(practice)} has sent you a secure message.</p>"]
    if sent:
        parts.append("<p>We have emailed you a 6-digit code. It is valid for 10 minutes.</p>")
    else:
        parts.append("<p>To open it, first get a one-time code by email.</p>")
    parts.append(f'<form method="post" action="{base}/code"><button type="submit" '
                 f'id="send-code">{"Send a new code" if sent else "Email me a code"}'
                 "</button></form>")
    field = ""
    if question:
        field = (f'<label for="answer">{escape(question)}</label>'
                 '<input id="answer" name="answer" autocomplete="off" required>')
    parts.append(f'<form method="post" action="{base}/verify">'
                 '<label for="code">Code from the email</label>'
                 '<input id="code" name="code" inputmode="numeric" pattern="[0-9]{6}" '
                 'maxlength="6" autocomplete="one-time-code" required>'
                 f'{field}<button type="submit" id="open">Open the message</button></form>')
    return layout(practice, "Secure message", "".join(parts))


def message_view(practice: str, token: str, shown: Shown, *, reply_allowed: bool) -> str:
    base = f"/p/{escape(token)}"
    rows = "".join(f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>"
                   for name, value in shown.headers)
    parts = [f"<table>{rows}</table>"]
    if shown.text:
        parts.append(f'<h2>Message</h2><pre id="text">{escape(shown.text)}</pre>')
    if shown.html:
        parts.append(f'<h2>Formatted message</h2><div class="html" id="html">{shown.html}'
                     "</div>")
    if shown.attachments:
        items = "".join(
            f'<li><a href="{base}/a/{index}" download>{escape(item.filename)}</a> '
            f'<span class="note">({len(item.data)} bytes)</span></li>'
            for index, item in enumerate(shown.attachments))
        parts.append(f"<h2>Attachments</h2><ul>{items}</ul>")
    if reply_allowed:
        parts.append(f'<h2>Reply</h2><form method="post" action="{base}/reply">'
                     f'<label for="reply">Your reply to {escape(practice)} (one reply)</label>'
                     '<textarea id="reply" name="text" rows="6" maxlength="10000" required>'
                     '</textarea><button type="submit" id="send-reply">Send reply</button>'
                     "</form>")
    else:
        parts.append("<p>You have replied to this message.</p>")
    parts.append(f'<form method="post" action="{base}/logout"><button type="submit" '
                 'id="logout">Close the message</button></form>')
    return layout(practice, "Your secure message", "".join(parts))


def notice_page(practice: str, title: str, text: str) -> str:
    return layout(practice, title, f"<p>{escape(text)}</p>")
