"""File modes of phigate's secrets and data (issue 13 finding 8).

Every file ``phigate init`` writes is ``0600``, or ``0640`` where the service group must
read it (the configuration, the certificate). The database is ``0600``: SQLite creates its
``-wal`` and ``-shm`` files with the database's mode, so they follow. ``check-config``
warns about any of these files that group members may write or others may read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from phigate.config import Settings

PRIVATE = 0o600
GROUP_READABLE = 0o640
#: Bits no phigate file may have: group write, anything for others, execute.
_TOO_OPEN = stat.S_IWGRP | stat.S_IRWXO | stat.S_IXUSR | stat.S_IXGRP


@dataclass(frozen=True)
class LooseFile:
    key: str
    path: Path
    mode: int

    def warning(self) -> str:
        return (f"{self.key}: {self.path} is mode {self.mode:04o}; make it 0600 "
                f"(or 0640 for the phigate group)")


def create_private(path: Path, mode: int = PRIVATE) -> None:
    """Create ``path`` empty with ``mode`` unless it exists; tighten it if it does."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        tighten(path, mode)
        return
    os.close(fd)


def tighten(path: Path, mode: int = PRIVATE) -> None:
    """Remove any permission bit beyond ``mode`` (never adds one)."""
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode:
        path.chmod(current & mode)


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, else None."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "")


def watched_files(settings: Settings, config_path: Path | None) -> Iterator[tuple[str, Path]]:
    """Every existing file whose mode matters, with the key that names it."""
    candidates: list[tuple[str, Path | str]] = [
        ("configuration", config_path or ""),
        ("[submission] tls_key", settings.submission.tls_key),
        ("[storage] master_key_file", settings.storage.master_key_file),
        ("[dkim] key_file", settings.dkim.key_file),
        ("[dkim] ed25519_key_file", settings.dkim.ed25519_key_file),
        ("[delivery] smarthost_password_file", settings.delivery.smarthost_password_file),
        ("[policy] token_key_file", settings.policy.token_key_file),
        ("[audit] key_file", settings.audit.key_file),
        ("[audit] checkpoint_file", settings.audit.checkpoint_file),
    ]
    database = sqlite_path(settings.storage.url)
    if database is not None:
        candidates += [("[storage] url", database),
                       ("[storage] url", Path(f"{database}-wal")),
                       ("[storage] url", Path(f"{database}-shm"))]
    for key, value in candidates:
        if value and Path(value).is_file():
            yield key, Path(value)


def loose_files(settings: Settings, config_path: Path | None) -> list[LooseFile]:
    loose = []
    for key, path in watched_files(settings, config_path):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & _TOO_OPEN:
            loose.append(LooseFile(key, path, mode))
    return loose
