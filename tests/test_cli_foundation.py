"""The command line as an admin meets it: init, check-config, user, bad configuration."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest


def phigate(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phigate", *args], input=stdin, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("install")
    result = phigate("init", "--dir", str(directory), "--domain", "practice.test")
    assert result.returncode == 0, result.stderr
    return directory


def test_init_writes_a_ready_config_keys_and_dns_records(installation: Path) -> None:
    config = installation / "phigate.toml"
    assert config.exists()
    master = installation / "keys" / "master.key"
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    assert (installation / "tls" / "cert.pem").read_bytes().startswith(b"-----BEGIN CERT")
    assert (installation / "phigate.db").exists()
    check = phigate("--config", str(config), "check-config")
    assert check.returncode == 0, check.stderr
    assert "configuration OK" in check.stdout


def test_init_twice_keeps_every_key(installation: Path) -> None:
    files = [installation / "keys" / "master.key", installation / "tls" / "key.pem",
             *sorted((installation / "dkim").iterdir())]
    before = {path: path.read_bytes() for path in files}
    result = phigate("init", "--dir", str(installation), "--domain", "practice.test")
    assert result.returncode == 0, result.stderr
    assert "._domainkey.practice.test. TXT \"v=DKIM1; k=rsa; p=" in result.stdout
    assert "v=spf1" in result.stdout and "_dmarc.practice.test" in result.stdout
    assert {path: path.read_bytes() for path in files} == before


def test_user_add_list_remove_with_password_from_stdin(installation: Path) -> None:
    config = str(installation / "phigate.toml")
    added = phigate("--config", config, "user", "add", "ehr", "--classes",
                    "treatment,operations", stdin="s3cret-pass\n")
    assert added.returncode == 0, added.stderr
    listed = phigate("--config", config, "user", "list", "--json")
    users = {u["name"]: u for u in json.loads(listed.stdout)}
    assert users["ehr"]["classes"] == ["treatment", "operations"]
    assert users["ehr"]["senders"] == ["practice.test"]
    again = phigate("--config", config, "user", "add", "ehr", stdin="x\n")
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "exists already" in again.stderr
    removed = phigate("--config", config, "user", "remove", "ehr")
    assert removed.returncode == 0
    assert "ehr" not in phigate("--config", config, "user", "list").stdout
    # The password is stored as a salted scrypt hash, never in clear.
    assert b"s3cret-pass" not in (installation / "phigate.db").read_bytes()


@pytest.mark.parametrize(("content", "expected"), [
    ('[submission]\nlisten = "127.0.0.1:587"\nlisen = 3\n', "[submission] lisen: unknown"),
    ("[submission]\nmax_recipients = \"many\"\n", "[submission] max_recipients: expected an"),
    ("[nonsense]\n", "nonsense: unknown configuration section"),
    ("[submission\n", "not valid TOML"),
    ('[delivery]\ntls_phi = "maybe"\n', "[delivery] tls_phi: must be one of"),
    ('[delivery.domains."x.test"]\ntls = "maybe"\n',
     "[delivery] domains.x.test.tls: must be one of opportunistic, required, verify"),
    ('[delivery.domains."x.test"]\npickup = "sometimes"\n',
     "[delivery] domains.x.test.pickup: must be one of on, off"),
    ('[logging]\nformat = "xml"\n', "[logging] format: must be one of logfmt, json"),
])
def test_bad_config_one_line_exit_2(tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "phigate.toml"
    config.write_text(content)
    result = phigate("--config", str(config), "check-config")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_key_file_named(installation: Path, tmp_path: Path) -> None:
    env = {"PHIGATE_SUBMISSION__TLS_KEY": str(tmp_path / "missing.pem")}
    result = phigate("--config", str(installation / "phigate.toml"), "check-config", env=env)
    assert result.returncode == 2
    assert "[submission] tls_key: file not found" in result.stderr
    assert result.stderr.count("\n") == 1


def test_listen_address_in_use_is_one_line_exit_2(installation: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"PHIGATE_SUBMISSION__LISTEN": f"127.0.0.1:{port}",
               "PHIGATE_SCANNER__ENABLED": "false"}
        result = phigate("--config", str(installation / "phigate.toml"), "serve", "--role",
                         "smtp", env=env)
    assert result.returncode == 2
    assert f"[submission] listen: cannot listen on 127.0.0.1:{port}: address already in use" \
        in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_schema_that_is_behind(tmp_path: Path, installation: Path) -> None:
    env = {"PHIGATE_STORAGE__URL": f"sqlite:///{tmp_path / 'empty.db'}",
           "PHIGATE_SCANNER__ENABLED": "false"}
    result = phigate("--config", str(installation / "phigate.toml"), "serve", env=env)
    assert result.returncode == 2
    assert "phigate db upgrade" in result.stderr
