"""``check-config``'s check of ``[audit] key_file`` (issue 13 item 4).

The audit key chains the entries (HMAC) and signs the checkpoints, so a key that is
missing, unreadable, malformed or readable by others is an error, on one line, with a
non-zero exit: the service would refuse it at start, or it would give the key away.
"""

from __future__ import annotations

import stat
from pathlib import Path

from phigate.audit.keys import AuditKey
from phigate.config import Settings
from phigate.errors import ConfigError

#: The audit key may be read by its owner, or by the phigate group: nothing else.
_ALLOWED = 0o640


def check_audit_key(settings: Settings) -> AuditKey | None:
    """The configured audit key, loaded; None when ``[audit] key_file`` is not set.

    Raises :class:`ConfigError` (one line naming the key) when the file is missing,
    unreadable, not 32 bytes in hex, or open beyond 0640.
    """
    if not settings.audit.key_file:
        return None
    path = Path(settings.audit.key_file)
    if not path.exists():
        raise ConfigError(f"[audit] key_file: {path} does not exist (create it with "
                          "`phigate init` or restore it from the backup of your keys)")
    if not path.is_file():
        raise ConfigError(f"[audit] key_file: {path} is not a file")
    key = AuditKey.load(path)  # unreadable or malformed: ConfigError
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~_ALLOWED:
        raise ConfigError(f"[audit] key_file: {path} is mode {mode:04o}; it must be 0600 "
                          "(or 0640 for the phigate group): chmod 600 it")
    return key
