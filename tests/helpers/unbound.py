"""A real DNSSEC-validating resolver for tests: Debian's Unbound over locally signed zones.

    with ValidatingResolver(tmp_path, signed={"example.test": records},
                            unsigned={"plain.test": records}) as resolver:
        settings = DeliverySettings(dnssec_resolver=resolver.address, ...)

Each ``signed`` zone gets an ECDSA P-256 key (``ldns-keygen``) and is signed with
``ldns-signzone``; Unbound serves every zone as an ``auth-zone`` (``for-upstream``) and
validates the signed ones against their keys as trust anchors, so answers from them carry
the AD bit only when the signatures check out. ``bogus`` names get their records changed
after signing: Unbound answers SERVFAIL for them. Unsigned zones answer without AD.
Records use :mod:`helpers.dns_server`'s shape (``{"name": [("TYPE", "value")]}``).

Tests that need it call :func:`require_unbound` (skips, with the reason, where the
binaries are missing; ``scripts/setup --test`` installs them).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from helpers.net import free_port

Records = dict[str, list[tuple[str, str]]]

_BINARIES = ("unbound", "ldns-keygen", "ldns-signzone")


def require_unbound() -> None:
    missing = [b for b in _BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/setup --test installs them)")


def _zone_text(zone: str, records: Records) -> str:
    lines = [f"$ORIGIN {zone}.", "$TTL 300",
             f"@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 300",
             f"@ IN NS ns.{zone}.", f"ns.{zone}. IN A 127.0.0.1"]
    for name, values in records.items():
        for rtype, value in values:
            lines.append(f"{name.rstrip('.')}. IN {rtype} {value}")
    return "\n".join(lines) + "\n"


class ValidatingResolver:
    def __init__(self, directory: Path, *, signed: dict[str, Records] | None = None,
                 unsigned: dict[str, Records] | None = None,
                 bogus: dict[str, list[tuple[str, str]]] | None = None) -> None:
        self.directory = directory
        self.port = free_port(socket.SOCK_DGRAM)
        self._signed = signed or {}
        self._unsigned = unsigned or {}
        self._bogus = bogus or {}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _sign(self, zone: str, records: Records) -> tuple[Path, Path]:
        path = self.directory / f"{zone}.zone"
        path.write_text(_zone_text(zone, records))
        key = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone],
                             cwd=self.directory, check=True, capture_output=True,
                             text=True).stdout.strip()
        with path.open("a") as stream:
            stream.write((self.directory / f"{key}.key").read_text())
        subprocess.run(["ldns-signzone", "-n", str(path), key], cwd=self.directory,
                       check=True, capture_output=True)
        signed = Path(f"{path}.signed")
        self._spoil(signed)
        return signed, self.directory / f"{key}.ds"

    def _spoil(self, signed: Path) -> None:
        """Change the data of ``bogus`` records after signing (signatures no longer match)."""
        text = signed.read_text()
        for name, (rtype, value) in ((n, v) for n, vs in self._bogus.items() for v in vs):
            lines = []
            for line in text.splitlines():
                fields = line.split()
                if fields[:1] == [f"{name}."] and len(fields) > 3 and fields[3] == rtype:
                    line = "\t".join(fields[:4] + [value])
                lines.append(line)
            text = "\n".join(lines) + "\n"
        signed.write_text(text)

    def _config(self) -> str:
        server = ["server:", "  interface: 127.0.0.1", f"  port: {self.port}",
                  "  do-daemonize: no", "  use-syslog: no", '  logfile: ""', '  username: ""',
                  '  chroot: ""', f'  directory: "{self.directory}"', '  pidfile: ""',
                  "  do-ip6: no", "  do-tcp: yes", "  access-control: 127.0.0.0/8 allow",
                  '  module-config: "validator iterator"', "  verbosity: 0",
                  # RFC 6761 names are local zones by default; these tests serve them.
                  '  local-zone: "test." nodefault']
        zones = []
        for zone, records in self._signed.items():
            zonefile, anchor = self._sign(zone, records)
            server.append(f'  trust-anchor-file: "{anchor}"')
            zones.append((zone, zonefile))
        for zone, records in self._unsigned.items():
            path = self.directory / f"{zone}.zone"
            path.write_text(_zone_text(zone, records))
            zones.append((zone, path))
        for zone, path in zones:
            server += ["auth-zone:", f'  name: "{zone}."', f'  zonefile: "{path}"',
                       "  for-upstream: yes", "  for-downstream: no", "  fallback-enabled: no"]
        return "\n".join(server) + "\n"

    def start(self) -> ValidatingResolver:
        config = self.directory / "unbound.conf"
        config.write_text(self._config())
        with (self.directory / "unbound.log").open("wb") as log:
            self._process = subprocess.Popen(["unbound", "-d", "-c", str(config)],
                                             stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError((self.directory / "unbound.log").read_text())
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("unbound did not start")

    def _answers(self) -> bool:
        import dns.exception
        import dns.message
        import dns.query

        try:
            dns.query.udp(dns.message.make_query("ns.invalid.", "A"), "127.0.0.1",
                          port=self.port, timeout=0.2)
        except (dns.exception.Timeout, OSError):
            return False
        return True

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> ValidatingResolver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
