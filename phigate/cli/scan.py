"""``phigate scan FILE.eml [FILE...] [--json]``: what the scanner finds in messages.

An admin's tool on files they hold, so it shows the matched text. Several files load the
model once; with ``--json`` each file is one JSON line with a ``"file"`` key.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from phigate.cli.context import CliContext, SubParsers
from phigate.cli.files import read_message_files
from phigate.errors import UserError


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "scan", help="scan messages for PHI and print the verdict and findings",
        description="Scan RFC 5322 message files for PHI and print the verdict and findings.")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE.eml")
    parser.add_argument("--json", action="store_true",
                        help="print JSON (one object per line when given several files)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    from phigate.config import ScannerSettings

    contents = read_message_files(args.files)
    settings = ctx.settings().scanner if ctx.has_config() else ScannerSettings()
    from phigate.phi_scanner import Scanner

    try:
        scanner = Scanner(settings)
    except RuntimeError as error:
        raise UserError(str(error)) from None
    several = len(args.files) > 1
    for path, raw in zip(args.files, contents, strict=True):
        result = scanner.scan_message(raw)
        if args.json:
            data = result.to_json(include_text=True)
            if several:
                data = {"file": str(path), **data}
            print(json.dumps(data, ensure_ascii=False))
        else:
            _print_human(path if several else None, result)
    sys.stdout.flush()
    return 0


def _print_human(path: Path | None, result: object) -> None:
    from phigate.phi_scanner import ScanResult

    assert isinstance(result, ScanResult)  # noqa: S101
    prefix = f"{path}: " if path else ""
    categories = ", ".join(result.categories) or "-"
    print(f"{prefix}verdict: {result.verdict} (score {result.score:.2f}; {categories})")
    for note in result.notes:
        print(f"  note: {note}")
    for finding in result.findings:
        print(f"  {finding.part}[{finding.start}:{finding.end}] {finding.category} "
              f"{finding.text!r} ({finding.confidence:.2f}, {finding.reason})")
