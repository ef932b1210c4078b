"""A counting SMTP sink with STARTTLS (aiosmtpd), run as its own process.

Postfix's ``smtp-sink`` speaks no TLS, and phigate never sends PHI in plaintext, so the
benchmark's relays deliver here instead. It prints ``mesg=N`` after every message it
accepted (flushed), which the benchmark reads back.

    python bench/load/tls_sink.py PORT CERT KEY
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class CountingHandler:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        sys.stdout.write(f"mesg={self.count}\n")
        sys.stdout.flush()
        return "250 2.0.0 Ok"


async def main(port: int, cert: str, key: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = CountingHandler()
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        return SMTP(handler, tls_context=context, require_starttls=True,
                    hostname="sink.bench", decode_data=False, data_size_limit=0)

    server = await loop.create_server(factory, host="127.0.0.1", port=port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
