"""Issue 13 item 4: ``check-config`` loads the audit key and refuses, on one line and with a
non-zero exit, a key that is missing, unreadable, malformed or readable by others."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def phigate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phigate", *args], capture_output=True,
                          text=True, timeout=60, umask=0o022, env=dict(os.environ))


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("audit-key") / "i"
    result = phigate("init", "--dir", str(base), "--domain", "practice.test")
    assert result.returncode == 0, result.stderr
    return base


def check(installation: Path) -> subprocess.CompletedProcess[str]:
    return phigate("--config", str(installation / "phigate.toml"), "check-config")


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stderr
    assert len(lines) == 1 and lines[0].startswith("phigate: error: [audit] key_file: "), lines
    assert "Traceback" not in result.stderr
    return lines[0]


def test_a_sound_audit_key_passes(installation: Path) -> None:
    result = check(installation)
    assert result.returncode == 0 and "[audit]" not in result.stderr, result.stderr


@pytest.mark.parametrize(("damage", "said"), [
    ("missing", "does not exist"),
    ("directory", "is not a file"),
    ("binary", "cannot read"),
    ("short", "does not hold 32 bytes"),
    ("0644", "is mode 0644"),
    ("0660", "is mode 0660"),
])
def test_a_bad_audit_key_is_one_clear_error(installation: Path, damage: str,
                                            said: str) -> None:
    key = installation / "keys" / "audit.key"
    assert key.is_file()
    saved = key.read_bytes()
    try:
        if damage == "missing":
            key.unlink()
        elif damage == "directory":
            key.unlink()
            key.mkdir()
        elif damage == "binary":
            key.write_bytes(b"\xff\xfe" + saved)
        elif damage == "short":
            key.write_bytes(saved[:20])
        else:
            key.chmod(int(damage, 8))
        line = one_error_line(check(installation))
        assert said in line and str(key) in line
        assert saved.strip().decode() not in line  # the key itself is never printed
    finally:
        if key.is_dir():
            key.rmdir()
        key.write_bytes(saved)
        key.chmod(0o600)
