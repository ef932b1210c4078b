"""Issue 13 finding 8 (file modes): `phigate init` created phigate.db 0644 as root, and
nothing checked the modes of key files. Now every file init writes is 0600 or 0640, the
database's -wal/-shm follow it, and check-config warns about looser modes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest


def phigate(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # umask 022 is what root gets on most distributions: the case the finding was about.
    return subprocess.run([sys.executable, "-m", "phigate", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, umask=0o022,
                          env=dict(os.environ))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def installation(tmp_path: Path) -> Path:
    result = phigate("init", "--dir", str(tmp_path / "i"), "--domain", "practice.test")
    assert result.returncode == 0, result.stderr
    return tmp_path / "i"


def test_every_file_init_writes_is_0600_or_0640(installation: Path) -> None:
    files = [path for path in installation.rglob("*") if path.is_file()]
    assert len(files) >= 6  # config, cert, TLS key, DKIM key, master key, token key, db
    loose = {str(path.relative_to(installation)): oct(mode(path)) for path in files
             if mode(path) not in (0o600, 0o640)}
    assert loose == {}
    assert mode(installation / "phigate.db") == 0o600
    for secret in ("keys/master.key", "keys/token.key", "tls/key.pem"):
        assert mode(installation / secret) == 0o600, secret
    # A write creates the WAL: SQLite gives it the database's mode.
    added = phigate("--config", str(installation / "phigate.toml"), "user", "add", "ehr",
                    stdin="s3cret-pass\n")
    assert added.returncode == 0, added.stderr
    for path in installation.glob("phigate.db*"):
        assert mode(path) == 0o600, path.name


def test_check_config_warns_about_loose_modes(installation: Path) -> None:
    config = str(installation / "phigate.toml")
    clean = phigate("--config", config, "check-config")
    assert clean.returncode == 0 and "warning" not in clean.stderr, clean.stderr
    (installation / "keys" / "token.key").chmod(0o644)
    (installation / "phigate.db").chmod(0o664)
    loose = phigate("--config", config, "check-config")
    assert loose.returncode == 0, loose.stderr
    assert "[policy] token_key_file" in loose.stderr and "0644" in loose.stderr
    assert "[storage] url" in loose.stderr and "0664" in loose.stderr


def test_init_again_tightens_an_existing_database(installation: Path) -> None:
    (installation / "phigate.db").chmod(0o644)  # as an older phigate created it
    again = phigate("init", "--dir", str(installation), "--domain", "practice.test")
    assert again.returncode == 0, again.stderr
    assert mode(installation / "phigate.db") == 0o600
