"""``phigate serve`` as a separate process, for tests that must kill it for real."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path


def start_relay(config: Path, port: int, *, roles: str | None, env: Mapping[str, str]
                ) -> subprocess.Popen[bytes]:
    """Start ``serve --role ROLES`` (None: plain ``serve``, every role) and wait until
    ``port`` accepts connections.

    Its output goes to ``relay.log`` beside the config; its tail is the error if it dies.
    """
    log = config.with_name("relay.log")
    role = [] if roles is None else ["--role", roles]
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "phigate", "--config", str(config), "serve", *role],
            env=dict(env), stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(log.read_text()[-3000:]) from None
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("relay did not start")


def delivery_children(log: str) -> list[int]:
    """The pids of the delivery child processes serve started, in order (from its log)."""
    return [int(line.split("pid=", 1)[1].split()[0]) for line in log.splitlines()
            if "event=delivery_process_started" in line]


def install_with_user(directory: Path, user: str = "ehr", password: str = "pw"
                      ) -> tuple[Path, ssl.SSLContext]:
    """``phigate init`` in ``directory`` and one submission account, as an admin would:
    the config file and a client context that trusts the relay's own certificate."""
    init = subprocess.run([sys.executable, "-m", "phigate", "init", "--dir", str(directory),
                           "--domain", "practice.test"], capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    config = directory / "phigate.toml"
    subprocess.run([sys.executable, "-m", "phigate", "--config", str(config), "user", "add",
                    user], input=f"{password}\n", text=True, check=True, capture_output=True)
    return config, ssl.create_default_context(cafile=str(directory / "tls" / "cert.pem"))
