"""Realistic practice messages of 2-20 KB built from the labelled practice-email corpus.

Each message keeps a corpus email (reminder, results, referral, billing...) as its text
part and adds what real practice mail carries around it: an HTML alternative with the
practice's letterhead and footer, a confidentiality notice, and for some a calendar or CSV
attachment, until it reaches a size drawn uniformly from 2-20 KB.
"""

from __future__ import annotations

import json
import random
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "data/practice_emails/emails.jsonl"
NOTICE = ("CONFIDENTIALITY NOTICE: This message may contain information that is privileged "
          "and confidential under HIPAA. If you are not the intended recipient, please "
          "notify the sender and delete it. ")
FOOTER_LINE = ("<tr><td style=\"font-family:Arial;font-size:11px;color:#555\">Clinic hours "
               "Monday to Friday 8am-6pm, Saturday 9am-1pm. Patient portal: "
               "https://portal.practice.test. Pharmacy refills: allow 48 hours.</td></tr>\n")


def _html(body: str, size: int) -> str:
    paragraphs = "".join(f"<p>{line}</p>\n" for line in body.splitlines() if line.strip())
    html = ("<html><head><style>p{font-family:Arial;font-size:14px}</style></head><body>"
            "<table width=\"600\"><tr><td><img src=\"https://practice.test/logo.png\" "
            f"alt=\"Practice\"></td></tr><tr><td>{paragraphs}</td></tr>\n")
    while len(html) < size:
        html += FOOTER_LINE
    return html + f"</table><p><small>{NOTICE}</small></p></body></html>"


def build_messages(count: int, *, sender: str, recipient_domain: str, seed: int = 8
                   ) -> list[tuple[str, bytes]]:
    """``count`` (recipient, message bytes) pairs; treatment/operations classes only."""
    rng = random.Random(seed)
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    # Marketing mail needs recorded consent and an approved campaign: not part of a
    # throughput run, so the corpus's marketing texts go out as operations mail.
    out = []
    for index in range(count):
        row = rows[index % len(rows)]
        original = message_from_string(row["eml"], policy=policy.default)
        target = rng.randint(2_000, 20_000)
        message = EmailMessage()
        message["From"] = f"Practice <{sender}>"
        recipient = f"patient{index}@{recipient_domain}"
        message["To"] = recipient
        message["Subject"] = row["subject"]
        message["X-Phigate-Class"] = "treatment" if row["class"] == "treatment" else "operations"
        body = row["body"] + "\n" + NOTICE + "\n"
        message.set_content(body)
        remaining = target - len(body) - 600
        attachment = None
        if remaining > 1500 and rng.random() < 0.3:
            attachment = "date,time,provider,location\n" + "".join(
                f"2026-0{m}-1{m},09:{m}0,Dr. Foster,Suite {m}00\n" for m in range(1, 9))
            remaining -= len(attachment) * 4 // 3 + 300
        if remaining > 0:
            message.add_alternative(_html(body, remaining), subtype="html")
        if attachment is not None:
            message.add_attachment(attachment, subtype="csv", filename="schedule.csv")
        del original
        out.append((recipient, message.as_bytes(policy=policy.SMTP)))
    return out
