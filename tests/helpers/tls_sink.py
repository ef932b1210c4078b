"""A TLS next hop for a relay under test: an :class:`SmtpSink` offering STARTTLS with a
certificate for 127.0.0.1 from the test CA, and the CA file delivery verifies it with.

Tests get it as the ``tls_sink`` fixture (tests/conftest.py); ``delivery`` is the
``[delivery]`` table that sends everything to it as a verified smarthost.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

from helpers.net import free_port
from helpers.smtp_sink import SmtpSink


@dataclass(frozen=True)
class TlsSink:
    sink: SmtpSink
    ca_file: Path

    def delivery(self, **extra: Any) -> dict[str, Any]:
        """``[delivery]`` settings: this sink as the smarthost, its CA trusted, fast polling."""
        return {"smarthost": f"127.0.0.1:{self.sink.port}", "ca_file": str(self.ca_file),
                "poll_interval_seconds": 0.05, **extra}


@contextmanager
def started_tls_sink(ca: trustme.CA, directory: Path) -> Iterator[TlsSink]:
    """Start the sink; stop it when the block ends."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    sink = SmtpSink(free_port(), tls_context=context).start()
    try:
        yield TlsSink(sink, ca_file)
    finally:
        sink.stop()
