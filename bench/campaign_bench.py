"""Scanner CPU per message of one campaign's personalised newsletters, cache on vs off
(issue 16 item 3).

A marketing campaign sends one body (HTML alternative and footer included) to thousands of
patients with the greeting and name changed per recipient. This harness builds N such
messages and scans each with one scanner as a worker would (``Scanner.scan_message``), once
with the paragraph cache on and once with it off, and prints scanner CPU per message and
messages per second of scanning, and their ratio.

    .venv/bin/python bench/campaign_bench.py            # N=10,000
    .venv/bin/python bench/campaign_bench.py -n 2000

Not yet done here: submitting the messages over SMTP as a marketing tool would, to an
approved campaign with consent recorded (this measures the scanner alone).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from phigate.config import ScannerSettings
from phigate.phi_scanner import Scanner

FIRST = ["Maria", "James", "Aisha", "Wei", "Olga", "Tomas", "Priya", "Kwame", "Sofia", "Liam"]
LAST = ["Lopez", "Okafor", "Nguyen", "Schmidt", "Patel", "Kowalski", "Haddad", "Brennan"]
PARAGRAPHS = [
    "Spring is here, and with it our new extended hours: the clinic is now open until 7pm "
    "on Thursdays, and on the first Saturday of every month from 9am to 1pm.",
    "Our nutrition workshop series starts next month. Sessions are free for everyone in "
    "the community, and you can bring a friend or a family member along.",
    "We have moved our patient portal to a new address. Your login stays the same; "
    "bookmarks to the old page will forward you for the next three months.",
    "Parking: the north lot is being resurfaced until the end of the month. Please use the "
    "garage on Elm Street; we validate tickets at the front desk.",
]
FOOTER = ("Northgate Family Practice, 1200 Harbor Road, Suite 300, Springfield. Phone "
          "(555) 201-3344. You receive this newsletter because you asked to. Unsubscribe: "
          "https://practice.test/unsubscribe")


def newsletter(index: int, rng: random.Random) -> bytes:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    greeting = f"Dear {name},"
    plain = "\n\n".join([greeting, *PARAGRAPHS, FOOTER]) + "\n"
    html = ("<html><body><table width=\"600\"><tr><td>"
            + "".join(f"<p>{p}</p>" for p in [greeting, *PARAGRAPHS])
            + f"</td></tr><tr><td><small>{FOOTER}</small></td></tr></table></body></html>")
    message = EmailMessage()
    message["From"] = "Northgate Family Practice <news@practice.test>"
    message["To"] = f"patient{index}@patients.example"
    message["Subject"] = "Northgate news: spring hours and workshops"
    message.set_content(plain)
    message.add_alternative(html, subtype="html")
    return bytes(message)


def measure(scanner: Scanner, messages: list[bytes]) -> tuple[float, float, set[str]]:
    verdicts: set[str] = set()
    cpu, wall = time.process_time(), time.perf_counter()
    for raw in messages:
        verdicts.add(scanner.scan_message(raw).verdict)
    return time.process_time() - cpu, time.perf_counter() - wall, verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(16)
    messages = [newsletter(i, rng) for i in range(args.messages)]
    rows = []
    for label, entries in (("cache on", ScannerSettings().cache_paragraphs), ("cache off", 0)):
        scanner = Scanner(replace(ScannerSettings(), cache_paragraphs=entries))
        scanner.scan_message(messages[0])  # model warm, as in a started worker
        cpu, wall, verdicts = measure(scanner, messages)
        rows.append((label, cpu, wall, verdicts))
    print(f"{args.messages} personalised newsletters of one campaign, one scanner process\n")
    print(f"{'scanner':<12}{'CPU ms/msg':>12}{'msg/s':>10}  verdicts")
    for label, cpu, wall, verdicts in rows:
        print(f"{label:<12}{cpu / args.messages * 1000:>12.2f}{args.messages / wall:>10.1f}"
              f"  {sorted(verdicts)}")
    print(f"\ncache on is {rows[1][1] / rows[0][1]:.1f}x cheaper in scanner CPU per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
