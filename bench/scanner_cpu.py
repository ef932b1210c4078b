"""CPU throughput of the whole-message scan over the practice emails (not a test).

    .venv/bin/python bench/scanner_cpu.py [--passes N] [--no-cache]

One ``Scanner`` in this process, the raw messages of ``bench/data/practice_emails``,
a warm-up of 20 messages (the spaCy model loads), then ``N`` passes timed with
``time.process_time()``: CPU seconds, so the figure moves less with other jobs on the
machine than wall time does. Run from outside the repository with ``PYTHONPATH=<tree>``
to time another tree (an older tree has no ``cache_paragraphs``; ``--no-cache`` needs it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from phigate.config import ScannerSettings
from phigate.phi_scanner.scanner import Scanner

EMAILS = Path(__file__).resolve().parent / "data/practice_emails/emails.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--no-cache", action="store_true", help="cache_paragraphs = 0")
    args = parser.parse_args()
    with EMAILS.open(encoding="utf-8") as lines:
        messages = [json.loads(line)["eml"].encode() for line in lines]
    options = {"cache_paragraphs": 0} if args.no_cache else {}
    scanner = Scanner(ScannerSettings(**options))  # type: ignore[arg-type]
    for raw in messages[:20]:
        scanner.scan_message(raw)
    start = time.process_time()
    for _ in range(args.passes):
        for raw in messages:
            scanner.scan_message(raw)
    cpu = time.process_time() - start
    print(f"{len(messages) * args.passes / cpu:.1f} messages per CPU second "
          f"({len(messages)} messages x {args.passes} passes)")


if __name__ == "__main__":
    main()
