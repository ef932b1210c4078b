"""An installation made by ``phigate init``, and a local DNS server for it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pytest
from helpers.dns_server import DnsServer
from helpers.net import free_port

from phigate.cli.main import main
from phigate.config import load_settings
from phigate.mta.delivery.dkim import dns_record

DOMAIN = "practice.test"
HOST = "mail.practice.test"
OUR_IP = "192.0.2.10"


@dataclass
class Run:
    status: int
    out: str
    err: str


def run(*argv: str) -> Run:
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(list(argv))
    return Run(status, out.getvalue(), err.getvalue())


@pytest.fixture
def installation(tmp_path: Path) -> Path:
    assert run("init", "--dir", str(tmp_path / "inst"), "--domain", DOMAIN,
               "--selector", "s2026").status == 0
    return tmp_path / "inst" / "phigate.toml"


def edit_config(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text, old
    config.write_text(text.replace(old, new, 1))


def txt(value: str) -> str:
    """A TXT record's zone text, split into 255-byte character-strings."""
    return " ".join(f'"{value[i:i + 250]}"' for i in range(0, len(value), 250))


def good_records(config: Path) -> dict[str, list[tuple[str, str]]]:
    settings = load_settings(config)
    key = Path(settings.dkim.key_file).read_bytes()
    return {
        DOMAIN: [("TXT", txt(f"v=spf1 a:{HOST} -all")), ("MX", f"10 {HOST}.")],
        HOST: [("A", OUR_IP)],
        "10.2.0.192.in-addr.arpa": [("PTR", f"{HOST}.")],
        f"s2026._domainkey.{DOMAIN}": [("TXT", txt(dns_record(key)))],
        f"_dmarc.{DOMAIN}": [("TXT", txt("v=DMARC1; p=quarantine; adkim=s; aspf=r"))],
    }


@pytest.fixture
def dns(installation: Path) -> Iterator[DnsServer]:
    server = DnsServer(free_port(socket.SOCK_DGRAM), good_records(installation)).start()
    edit_config(installation, 'tls_phi = "verify"\n',
                f'tls_phi = "verify"\ndns_servers = ["{server.address}"]\n')
    yield server
    server.stop()
