"""Semantic checks of loaded settings that types alone cannot express."""

from __future__ import annotations

import ipaddress
import logging
import re
from pathlib import Path

from phigate.config.limits import check_limits, unlimited_warnings
from phigate.config.sections import HostPort, Settings
from phigate.errors import ConfigError

log = logging.getLogger("phigate.config")
#: A lease owner is ``NODE:PID:RANDOM``: a node name holds no ':' (nor LIKE wildcards).
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def validate(settings: Settings, *, check_files: bool = True) -> None:
    """Semantic checks beyond types (the loader checks choices): networks, addresses,
    readable key and certificate files; limits above zero (:mod:`phigate.config.limits`)."""
    check_limits(settings)
    if settings.server.node_name and not _NODE_NAME.fullmatch(settings.server.node_name):
        raise ConfigError("[server] node_name: 1-64 letters, digits, '.', '_' or '-'")
    for warning in unlimited_warnings(settings):
        log.warning("config: %s", warning)
    for key in ("trusted_networks", "never_lock_networks"):
        for index, network in enumerate(getattr(settings.submission, key)):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ConfigError(
                    f"[submission] {key}[{index}]: not a network: {network!r}"
                ) from None
    if settings.pickup.public_url and not settings.pickup.public_url.startswith("https://"):
        raise ConfigError("[pickup] public_url: must start with https://")
    if settings.submission.implicit_tls_listen:
        HostPort.parse(settings.submission.implicit_tls_listen,
                       key="[submission] implicit_tls_listen")
    if settings.delivery.smarthost:
        HostPort.parse(settings.delivery.smarthost, key="[delivery] smarthost")
    if settings.delivery.dnssec_resolver:
        server = settings.delivery.dnssec_resolver
        HostPort.parse(server if ":" in server else f"{server}:53",
                       key="[delivery] dnssec_resolver")
    for index, server in enumerate(settings.delivery.dns_servers):
        HostPort.parse(server if ":" in server else f"{server}:53",
                       key=f"[delivery] dns_servers[{index}]")
    feedback = settings.feedback
    if not 0 < feedback.incident_hold_base_seconds <= feedback.incident_hold_max_seconds:
        raise ConfigError("[feedback] incident_hold_base_seconds: must be positive and at most "
                          "incident_hold_max_seconds")
    if "{unsubscribe_url}" not in settings.policy.footer_text:
        raise ConfigError("[policy] footer_text: must contain {unsubscribe_url}")
    if not settings.storage.url.startswith(("sqlite", "postgresql")):
        raise ConfigError("[storage] url: only sqlite:/// and postgresql+psycopg:// are supported")
    if check_files:
        for key, path in _required_files(settings):
            _check_readable(key, path)


def _required_files(settings: Settings) -> list[tuple[str, Path]]:
    files = [
        ("[submission] tls_cert", settings.submission.tls_cert),
        ("[submission] tls_key", settings.submission.tls_key),
        ("[storage] master_key_file", settings.storage.master_key_file),
    ]
    optional = [
        ("[dkim] key_file", settings.dkim.key_file),
        ("[dkim] ed25519_key_file", settings.dkim.ed25519_key_file),
        ("[delivery] ca_file", settings.delivery.ca_file),
        ("[delivery] smarthost_password_file", settings.delivery.smarthost_password_file),
        ("[policy] token_key_file", settings.policy.token_key_file),
    ]
    files += [(key, Path(value)) for key, value in optional if value]
    return files


def _check_readable(key: str, path: Path) -> None:
    try:
        with path.open("rb") as stream:
            stream.read(1)
    except FileNotFoundError:
        raise ConfigError(f"{key}: file not found: {path}") from None
    except PermissionError:
        raise ConfigError(f"{key}: file not readable (permission denied): {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{key}: is a directory, expected a file: {path}") from None
