"""A throwaway PostgreSQL cluster on 127.0.0.1 for the test session.

``PHIGATE_TEST_PG_URL`` (a server URL, e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432``)
points the tests at an existing server instead. Otherwise the Debian binaries start a
cluster in a temporary directory (as the ``postgres`` user when we are root, since
PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from helpers.net import free_port


@dataclass
class PostgresCluster:
    directory: Path
    port: int
    bindir: Path
    run_as: str | None

    @property
    def server_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else list(argv)

    def start(self) -> None:
        subprocess.run(
            self._cmd(str(self.bindir / "initdb"), "-D", str(self.directory / "data"),
                      "-A", "trust", "-U", "postgres", "--no-sync"),
            check=True, capture_output=True,
        )
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.directory} -c max_connections=200 "
                   "-c fsync=on")
        subprocess.run(
            self._cmd(str(self.bindir / "pg_ctl"), "-w", "-D", str(self.directory / "data"),
                      "-l", str(self.directory / "log"), "-o", options, "start"),
            check=True, capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"),
                      "-m", "immediate", "stop"),
            check=False, capture_output=True,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def find_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def start_cluster() -> PostgresCluster | None:
    bindir = find_bindir()
    if bindir is None:
        return None
    run_as = None
    directory = Path(tempfile.mkdtemp(prefix="phigate-pg-"))
    if os.geteuid() == 0:
        run_as = "postgres"
        entry = pwd.getpwnam(run_as)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    cluster = PostgresCluster(directory, free_port(), bindir, run_as)
    cluster.start()
    return cluster
