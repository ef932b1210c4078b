"""Reading the message files an admin names on the command line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from phigate.errors import UserError


def read_message_files(paths: Iterable[Path]) -> list[bytes]:
    """Every file's bytes, read up front so a typo fails before any output or model load."""
    return [_read(path) for path in paths]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a message file") from None
    except PermissionError:
        raise UserError(f"{path}: not readable (permission denied)") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None
