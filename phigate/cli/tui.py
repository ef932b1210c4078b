"""``phigate tui``: the Textual admin console (Textual is imported only here, lazily)."""

from __future__ import annotations

import argparse

from phigate.cli.context import CliContext, SubParsers


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("tui", help="the terminal admin console")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    from phigate.admin.service import open_service
    from phigate.admin_tui.app import AdminApp

    service, close = open_service(ctx.settings())
    try:
        # Refuse before drawing anything: someone in neither list gets one line, audited.
        service.require_viewer("tui.open")
        AdminApp(service).run()
    finally:
        close()
    return 0
