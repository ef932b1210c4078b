"""Entry point of the ``phigate`` command.

Each command group lives in its own module exposing ``register(subparsers)``; the module
adds its parser(s) and sets ``handler=<function(args, ctx) -> int>``. Errors meant for the
user are raised as :class:`phigate.errors.PhigateError` and printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from phigate import __version__
from phigate.cli.context import DEFAULT_CONFIG, CliContext
from phigate.errors import PhigateError

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES = (
    "phigate.cli.init_cmd",
    "phigate.cli.serve",
    "phigate.cli.check_config",
    "phigate.cli.users",
    "phigate.cli.scan",
    "phigate.cli.queue_cmd",
    "phigate.cli.audit_cmd",
    "phigate.cli.purge",
    "phigate.cli.tui",
    "phigate.cli.suppress",
    "phigate.cli.consent",
    "phigate.cli.campaign",
    "phigate.cli.feedback",
    "phigate.cli.dkim_cmd",
    "phigate.cli.tls_cmd",
    "phigate.cli.report_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phigate",
        description="Outbound mail relay and HIPAA compliance appliance.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("PHIGATE_CONFIG", str(DEFAULT_CONFIG))),
        help=f"configuration file (default: $PHIGATE_CONFIG or {DEFAULT_CONFIG})",
    )
    parser.add_argument("--version", action="version", version=f"phigate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:  # a command group not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = CliContext(config_path=args.config)
    try:
        status: int = args.handler(args, ctx)
    except PhigateError as error:
        print(f"phigate: error: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return _closed_pipe()
    return status


def _closed_pipe() -> int:
    """The reader went away (``phigate queue list | head``): stop quietly, as ``ls`` does.

    Python would otherwise print a traceback when it flushes stdout on exit; pointing the
    descriptor at /dev/null lets that last flush succeed."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141  # 128 + SIGPIPE, what a shell reports for a command killed by the pipe


if __name__ == "__main__":
    sys.exit(main())
